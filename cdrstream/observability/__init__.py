"""Metrics and logs: adapters that observe the pipeline and the API, never decide anything."""
