"""Bodies of the operator endpoints: dead letters, blocked senders, the load level."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class DeadLetterOut(BaseModel):
    id: str
    topic: str
    error: str
    attempts: int = Field(description="Deliveries tried before it was given up on.")
    enqueued_at: str
    failed_at: str
    event_ids: list[str]
    senders: list[str]
    recipients: int


class DeadLetterDetail(DeadLetterOut):
    body: Any = Field(description="The message itself (JSON), as it will be replayed.")


class DeadLetterList(BaseModel):
    items: list[DeadLetterOut]


class Purged(BaseModel):
    purged: int


class BlockedSenderOut(BaseModel):
    sender: str
    blocked_at: str
    reason: str


class BlockedSenderList(BaseModel):
    items: list[BlockedSenderOut]


class LoadOut(BaseModel):
    level: str = Field(description="normal, shed_p2 (P2 refused) or shed_p1 (P1 too).")
    backlog: int = Field(description="Batches waiting for evaluation or a channel.")
    by_priority: dict[str, int]
    queues: dict[str, int] = Field(description="Every non-empty queue's depth.")
    held: dict[str, int] = Field(
        description="Per queue, messages held for later (quiet hours, caps, retry backoff):"
        " not backlog, and not counted above."
    )
    shed_p2_at: int
    shed_p1_at: int


class HealthOut(BaseModel):
    status: str = Field(description='"ok": the process answers.')


class ReadyOut(BaseModel):
    status: str = Field(description='"ready", or "not_ready" (with 503).')
    problems: list[str] = Field(description="What is wrong, each saying what to check.")
    workers: int = Field(description="Workers that checked in lately.")
    oldest_seconds: dict[str, float] = Field(
        description="Per queue with due work: how long its oldest message has waited."
    )
