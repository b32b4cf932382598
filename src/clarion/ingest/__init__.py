"""Accepting events: validation, idempotency, per-sender rate limits, durable enqueue."""
