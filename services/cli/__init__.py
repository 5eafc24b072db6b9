"""``rectify``: the operator's one command-line entry point."""
