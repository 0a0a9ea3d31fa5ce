"""cdrstream: call-ended events from a hosted PBX to per-tenant Call Data Records."""

__version__ = "0.1.0"
