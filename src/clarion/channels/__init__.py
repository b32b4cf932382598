"""Channel providers: one module per service, found through this table (imported lazily,
so a worker that never sends SMS never imports the SMS client)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from clarion.channels.base import Provider
from clarion.channels.config import ProviderConfig, ProviderDeps
from clarion.errors import InputError
from clarion.models import Channel

KINDS: dict[str, tuple[str, Channel]] = {
    "apns": ("clarion.channels.apns", Channel.PUSH),
    "fcm": ("clarion.channels.fcm", Channel.PUSH),
    "webpush": ("clarion.channels.webpush", Channel.PUSH),
    "smtp": ("clarion.channels.smtp", Channel.EMAIL),
    "sms_twilio": ("clarion.channels.sms_twilio", Channel.SMS),
    "webhook": ("clarion.channels.webhook", Channel.WEBHOOK),
}


def module(kind: str) -> ModuleType:
    try:
        path, _ = KINDS[kind]
    except KeyError:
        raise InputError.single(
            "kind", f"unknown provider kind {kind!r}; one of {', '.join(sorted(KINDS))}"
        ) from None
    return importlib.import_module(path)


def kind_of(name: str, doc: dict[str, Any]) -> str:
    return str(doc.get("kind") or name)


def parse(name: str, doc: dict[str, Any]) -> ProviderConfig:
    """Validate a stored or submitted configuration for provider ``name``."""
    config: ProviderConfig = module(kind_of(name, doc)).Config.model_validate(doc)
    return config


def secret_fields(name: str, doc: dict[str, Any]) -> set[str]:
    fields: set[str] = module(kind_of(name, doc)).SECRETS
    return fields


def build(name: str, config: ProviderConfig, deps: ProviderDeps) -> Provider:
    provider: Provider = module(config.kind or name).make(name, config, deps)
    return provider


def channel_of(kind: str) -> Channel:
    return KINDS[kind][1]
