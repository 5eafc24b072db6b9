"""Pure domain rules of the rectification service: working-day calendar and time limits."""
