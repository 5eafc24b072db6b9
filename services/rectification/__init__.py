"""rectification service."""
