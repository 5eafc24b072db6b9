"""publicity service."""
