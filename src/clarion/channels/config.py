"""What every provider's configuration has in common, and how it is stored and shown.

Each provider module defines ``Config``, a subclass of :class:`ProviderConfig`. Secrets are
``SecretStr``: they never appear in ``repr``, logs or API answers (they show as
``**********``); ``stored`` reveals them only for the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from clarion.clock import Clock
from clarion.stores.base import ProviderTokenStore

MASK = "**********"


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str | None = Field(None, description="Which module speaks for it; default: the name.")
    role: Literal["primary", "secondary"] = "primary"
    rate_per_s: float | None = Field(None, gt=0, description="Never send faster than this.")
    enabled: bool = True
    ca_file: str | None = Field(None, description="A PEM bundle to trust (private CAs).")


def stored(config: ProviderConfig) -> dict[str, Any]:
    """The config as the database keeps it: secrets revealed."""
    doc = config.model_dump(mode="python", exclude_none=True)
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in doc.items()}


def shown(config: ProviderConfig) -> dict[str, Any]:
    """The config as anyone may see it: secrets masked."""
    doc: dict[str, Any] = config.model_dump(mode="json", exclude_none=True)
    return doc


def keep_secrets(
    new: dict[str, Any], old: dict[str, Any] | None, secret_fields: set[str]
) -> dict[str, Any]:
    """A PUT that leaves a secret out (or sends the mask back) keeps the stored one."""
    merged = dict(new)
    for name in secret_fields:
        if old is not None and name in old and merged.get(name) in (None, MASK):
            merged[name] = old[name]
    return merged


@dataclass(frozen=True, slots=True)
class ProviderDeps:
    """What a provider may need besides its own config."""

    clock: Clock
    tokens: ProviderTokenStore
    allow_private_targets: bool = False
    public_url: str = "http://localhost:8080"
