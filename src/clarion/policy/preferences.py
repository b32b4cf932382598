"""A user's notification preferences, parsed from the stored document.

The stored document is the API's (``{"enabled": true, "types": {"like": {"enabled":
false}}}``); this module turns it into a small immutable value the evaluator can check
quickly. A user without a document gets ``DEFAULT``: the fast path for most recipients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TypeSetting:
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Preferences:
    enabled: bool = True
    types: dict[str, TypeSetting] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Preferences:
        types = {
            name: TypeSetting(enabled=bool(setting.get("enabled", True)))
            for name, setting in (doc.get("types") or {}).items()
        }
        return cls(enabled=bool(doc.get("enabled", True)), types=types)

    def type_enabled(self, type_name: str) -> bool:
        setting = self.types.get(type_name)
        return True if setting is None else setting.enabled


DEFAULT = Preferences()
