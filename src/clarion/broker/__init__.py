"""Durable queues between pipeline stages."""

from clarion.broker.base import Broker, Message, Outbound

__all__ = ["Broker", "Message", "Outbound"]
