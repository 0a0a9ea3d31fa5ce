"""`cdrstream rebuild`: the retention window rebuilt from the call-ended topic."""
