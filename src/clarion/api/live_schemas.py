"""Request and response bodies of end-user access and live sync (``/v1/me``, state)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from clarion.api.schemas import Strict, UserIdField
from clarion.live.tokens import MAX_LIFETIME_S, TOKEN_LIFETIME_S

StateKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")]


class TokenIn(Strict):
    ttl_seconds: int = Field(TOKEN_LIFETIME_S, ge=60, le=MAX_LIFETIME_S)


class TokenOut(BaseModel):
    token: str = Field(description="Send as 'Authorization: Bearer <token>' to /v1/me/….")
    expires_at: str


class TicketOut(BaseModel):
    ticket: str = Field(description="GET /v1/me/stream?ticket=… once, within 30 seconds.")
    expires_at: str


class AckIn(Strict):
    position: Annotated[str, StringConstraints(max_length=64)]
    device_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class StatePutIn(Strict):
    value: Any = Field(description="Any JSON (up to 16 KiB).")
    version: int = Field(ge=1, description="Higher wins; a lower or equal one is ignored.")
    priority: Literal["P0", "P1"] = Field(
        "P1",
        description="P0: critical (a membership, an entitlement): every device must"
        " acknowledge it within 10 s, or it gets a background push to refetch.",
    )


class StateBatchItem(StatePutIn):
    user_id: UserIdField
    key: StateKey


class StateBatchIn(Strict):
    updates: list[StateBatchItem] = Field(max_length=1000)


class StatePutOut(BaseModel):
    applied: bool = Field(description="False: the stored version is as new or newer.")
    position: str | None = Field(None, description="Its stream message, if anyone listens.")


class StateBatchOut(BaseModel):
    applied: int
    ignored: int


class StateItemOut(BaseModel):
    key: str
    value: Any
    version: int
    updated_at: str


class StateOut(BaseModel):
    position: str = Field(description="Resume the stream from here after loading this.")
    items: list[StateItemOut]
