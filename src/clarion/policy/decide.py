"""The evaluation rule for one recipient of one event.

Order matters and follows seed 001 "Preference Evaluator": master switch, then the type.
P0 bypasses the master switch and a mandatory type cannot be switched off by the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from clarion.models import Priority
from clarion.policy.preferences import Preferences


class Reason(StrEnum):
    MASTER_OFF = "master_off"
    DISABLED_TYPE = "disabled_type"
    NO_CHANNEL = "no_channel"


@dataclass(frozen=True, slots=True)
class Verdict:
    deliver: bool
    reason: Reason | None = None


DELIVER = Verdict(True)


def decide(prefs: Preferences, *, type_name: str, priority: Priority, mandatory: bool) -> Verdict:
    if not prefs.enabled and priority is not Priority.P0 and not mandatory:
        return Verdict(False, Reason.MASTER_OFF)
    if not mandatory and not prefs.type_enabled(type_name):
        return Verdict(False, Reason.DISABLED_TYPE)
    return DELIVER
