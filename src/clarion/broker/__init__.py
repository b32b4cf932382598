"""Durable queues between pipeline stages."""

from clarion.broker.base import Broker, DeadLetter, Message, Outbound

__all__ = ["Broker", "DeadLetter", "Message", "Outbound"]
