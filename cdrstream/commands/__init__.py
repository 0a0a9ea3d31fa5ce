"""CLI subcommands: thin shells over the core and the adapters."""
