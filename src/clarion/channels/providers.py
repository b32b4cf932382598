"""The providers a worker sends through: built from configuration, rebuilt when it changes.

Configuration comes from the config file (``CLARION_PROVIDERS_FILE``, TOML or JSON, one
table per provider) overlaid by what operators stored with ``PUT /v1/providers/{name}``,
and providers that need no credentials (the webhook sender) are there without either.
Each provider keeps its long-lived connections for as long as its configuration stays the
same; a change closes the old instance and builds a new one.

The stored configuration is read again on every use (a handful of rows, compared before
anything is rebuilt), so a provider added or changed through the API takes effect on the
next send: a new user's first test notification must not fall into a refresh gap.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from clarion import channels
from clarion.channels.base import Provider
from clarion.channels.config import ProviderConfig, ProviderDeps
from clarion.errors import ConfigError
from clarion.models import Channel
from clarion.stores.base import ProviderStore

log = logging.getLogger(__name__)

BUILT_IN: dict[str, dict[str, Any]] = {"webhook": {}}
"""Providers with nothing to configure, present unless one of their kind is configured."""


def with_built_ins(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``docs`` plus each built-in provider whose kind none of them provides."""
    kinds = {channels.kind_of(name, doc) for name, doc in docs.items()}
    extra = {n: d for n, d in BUILT_IN.items() if channels.kind_of(n, d) not in kinds}
    return {**extra, **docs}


async def unserved(
    wanted: Iterable[Channel], store: ProviderStore, file_docs: dict[str, dict[str, Any]]
) -> list[str]:
    """What to say about each of ``wanted`` that no configured provider can deliver on
    (registering a type that lists it is allowed: the events wait for a provider)."""
    docs = with_built_ins({**file_docs, **await store.all()})
    served = {channels.channel_of(channels.kind_of(n, d)) for n, d in docs.items()}
    warnings = []
    for channel in wanted:
        if channel in (Channel.IN_APP, Channel.LIVE) or channel in served:
            continue
        kinds = " or ".join(k for k, (_, c) in channels.KINDS.items() if c is channel)
        warnings.append(
            f"no provider is configured for {channel.value}: its events wait until one is"
            f" (PUT /v1/providers/{{name}} of kind {kinds})"
        )
    return warnings


def read_file(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    try:
        raw = path.read_bytes()
        docs = tomllib.loads(raw.decode()) if path.suffix == ".toml" else orjson.loads(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read providers file {path}: {exc}") from exc
    if not isinstance(docs, dict) or not all(isinstance(v, dict) for v in docs.values()):
        raise ConfigError(f"{path}: expected one table (object) per provider")
    return docs


class ProviderSet:
    def __init__(
        self,
        store: ProviderStore,
        deps: ProviderDeps,
        *,
        file_docs: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self._store = store
        self._deps = deps
        self._file_docs = file_docs or {}
        self._docs: dict[str, bytes] = {}
        self._configs: dict[str, ProviderConfig] = {}
        self._live: dict[str, Provider] = {}

    async def configs(self) -> dict[str, ProviderConfig]:
        await self._refresh()
        return dict(self._configs)

    async def choose(self, kind: str, *, role: str = "primary") -> Provider | None:
        """The enabled provider of ``kind`` in ``role`` (one of each is expected)."""
        await self._refresh()
        for name, config in sorted(self._configs.items()):
            if (config.kind or name) == kind and config.role == role and config.enabled:
                return self._provider(name, config)
        return None

    async def candidates(self, kind: str) -> list[tuple[Provider, ProviderConfig]]:
        """The enabled providers of ``kind``: the primary first, then the secondary."""
        await self._refresh()
        found = [
            (name, config)
            for name, config in sorted(self._configs.items())
            if (config.kind or name) == kind and config.enabled
        ]
        found.sort(key=lambda item: item[1].role != "primary")
        return [(self._provider(name, config), config) for name, config in found]

    def _provider(self, name: str, config: ProviderConfig) -> Provider:
        provider = self._live.get(name)
        if provider is None:
            provider = self._live[name] = channels.build(name, config, self._deps)
        return provider

    async def _refresh(self) -> None:
        docs = with_built_ins({**self._file_docs, **await self._store.all()})
        for name in [n for n in self._live if n not in docs]:
            await self._live.pop(name).close()
            self._configs.pop(name, None)
        for name, doc in docs.items():
            raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            if self._docs.get(name) == raw:
                continue
            try:
                config = channels.parse(name, doc)
            except Exception as exc:  # a broken config must not stop the other providers
                log.error("provider %s: configuration refused: %s", name, exc)
                continue
            old = self._live.pop(name, None)
            if old is not None:
                await old.close()
            self._docs[name] = raw
            self._configs[name] = config

    async def close(self) -> None:
        for provider in self._live.values():
            await provider.close()
        self._live.clear()
