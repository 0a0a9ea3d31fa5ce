"""Simulated PBX traffic: realistic call-ended events (`cdrstream.simulation.calls`)."""
