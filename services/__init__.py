"""Rectify: the four services and the code they share (``services.common``)."""
