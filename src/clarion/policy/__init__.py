"""Delivery policy: what a person's settings allow, as pure functions over one recipient."""
