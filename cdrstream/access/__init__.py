"""Partner access: bearer tokens (stored hashed), the access file, and the read decision."""
