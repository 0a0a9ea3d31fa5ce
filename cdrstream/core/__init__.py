"""The rules: pure functions from a call-ended event to an outcome and a record. No I/O here."""
