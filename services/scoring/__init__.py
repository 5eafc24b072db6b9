"""scoring service."""
