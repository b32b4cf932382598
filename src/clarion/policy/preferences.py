"""A person's notification preferences, parsed from the stored document.

The document is the API's (``GET/PUT/PATCH /v1/users/{id}/preferences``)::

    {"enabled": true,
     "types": {"like": {"enabled": false}, "comment": {"channels": ["push", "in_app"]}},
     "channels": {"email": {"enabled": true, "digest": "daily", "digest_at": "08:00"}},
     "quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "America/New_York"},
     "frequency_caps": {"per_hour": 10, "per_day": 50}}

It was validated when stored; this module turns it into an immutable value that is cheap to
evaluate. A person without a document gets ``DEFAULT`` — the fast path for most recipients.
Types a person never touched take the type's default (lazily: nothing is written for them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clarion.models import Channel
from clarion.policy.digest import DigestSchedule
from clarion.policy.frequency import FrequencyCaps
from clarion.policy.quiet_hours import QuietHours


@dataclass(frozen=True, slots=True)
class TypeSetting:
    enabled: bool | None = None
    """None: the type's default."""
    channels: frozenset[Channel] | None = None
    """None: the type's channels."""


@dataclass(frozen=True, slots=True)
class Preferences:
    enabled: bool = True
    types: dict[str, TypeSetting] = field(default_factory=dict)
    disabled_channels: frozenset[Channel] = frozenset()
    quiet_hours: QuietHours | None = None
    caps: FrequencyCaps | None = None
    digest: DigestSchedule | None = None
    """Email collected into a daily or weekly digest instead of sent one by one."""

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Preferences:
        types = {
            name: TypeSetting(
                enabled=setting.get("enabled"),
                channels=None
                if setting.get("channels") is None
                else frozenset(Channel(c) for c in setting["channels"]),
            )
            for name, setting in (doc.get("types") or {}).items()
        }
        disabled = frozenset(
            Channel(name)
            for name, setting in (doc.get("channels") or {}).items()
            if setting.get("enabled") is False
        )
        quiet = doc.get("quiet_hours")
        caps = doc.get("frequency_caps")
        email = (doc.get("channels") or {}).get(Channel.EMAIL.value) or {}
        every = email.get("digest") or "immediate"
        return cls(
            enabled=bool(doc.get("enabled", True)),
            types=types,
            disabled_channels=disabled,
            quiet_hours=None
            if not quiet
            else QuietHours.parse(quiet["start"], quiet["end"], quiet.get("timezone")),
            caps=None
            if not caps or (caps.get("per_hour") is None and caps.get("per_day") is None)
            else FrequencyCaps(caps.get("per_hour"), caps.get("per_day")),
            digest=None
            if every == "immediate"
            else DigestSchedule.parse(every, email.get("digest_at"), email.get("digest_day")),
        )

    def type_enabled(self, type_name: str, *, default: bool) -> bool:
        setting = self.types.get(type_name)
        if setting is None or setting.enabled is None:
            return default
        return setting.enabled

    def channels_for(self, type_name: str, offered: tuple[Channel, ...]) -> tuple[Channel, ...]:
        """The type's channels, narrowed by this person's per-type and per-channel choices."""
        setting = self.types.get(type_name)
        chosen = offered
        if setting is not None and setting.channels is not None:
            chosen = tuple(c for c in offered if c in setting.channels)
        if self.disabled_channels:
            chosen = tuple(c for c in chosen if c not in self.disabled_channels)
        return chosen


DEFAULT = Preferences()
