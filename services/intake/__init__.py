"""Intake: the front door for integrating agencies (HTTP API), its submissions and the complainant vault."""
