"""Durable queues between pipeline stages: the protocol (``base``), the in-memory broker, the
outbox relay and retry timing; the SQLite and Redis brokers live with their backends
(``clarion.backends``)."""

from clarion.broker.base import Broker, DeadLetter, Message, Outbound, Record, settle_in_order

__all__ = ["Broker", "DeadLetter", "Message", "Outbound", "Record", "settle_in_order"]
