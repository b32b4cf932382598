"""The HTTP API: producers, end users and operators."""
