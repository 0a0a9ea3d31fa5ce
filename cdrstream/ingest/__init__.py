"""Adapters from PBX call records to call-ended events (docs/adapters/).

Functional core, thin shells: what a CDR means is decided by pure functions
(`freeswitch_cdr`, `asterisk_cdr`, `ami_messages`, `results`), unit-tested with realistic
samples; the HTTP receiver (`freeswitch_receiver`), the file tailer (`csv_tail`), the AMI
client (`ami_client`) and the Kafka producer (`producer`) only move bytes.
"""
