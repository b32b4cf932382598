"""``clarion doctor``: check a configuration and say what to fix.

Each check answers with what it found and, when something is wrong, the change that fixes
it: the backends answer; every channel a type lists has a provider; every CA file a
provider names can be read; links in emails point somewhere people can reach.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clarion import channels
from clarion.channels.providers import read_file, unserved, with_built_ins
from clarion.config import Settings
from clarion.errors import ClarionError
from clarion.models import Channel
from clarion.runtime import Runtime, open_runtime


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def diagnose(settings: Settings) -> list[Finding]:
    """Every check; the backends first (without them the rest cannot be read)."""
    runtime = open_runtime(settings)
    try:
        reach = await _backends(runtime)
        if not reach.ok:
            return [reach]
        docs = await _provider_docs(runtime)
        return [
            reach,
            *await _channels(runtime, docs),
            *_ca_files(docs),
            *await _links(runtime, docs),
        ]
    finally:
        await runtime.close()


async def _backends(runtime: Runtime) -> Finding:
    settings = runtime.settings
    where = [f"queues in {settings.broker}" if settings.broker else "queues in the database"]
    where.append(f"stores in {settings.store}" if settings.store else f"database {settings.db}")
    try:
        await runtime.check()
        await runtime.stores.types.list()
    except (ClarionError, OSError) as exc:
        return Finding(
            "backends",
            False,
            str(exc),
            "start the server it names, or correct CLARION_BROKER / CLARION_STORE",
        )
    return Finding("backends", True, ", ".join(where) + ": reachable")


async def _provider_docs(runtime: Runtime) -> dict[str, dict[str, Any]]:
    try:
        from_file = read_file(runtime.settings.providers_file)
    except ClarionError:
        from_file = {}
    return {**from_file, **await runtime.stores.providers.all()}


async def _channels(runtime: Runtime, docs: dict[str, dict[str, Any]]) -> list[Finding]:
    wanted: dict[Channel, list[str]] = {}
    for spec in await runtime.stores.types.list():
        for channel in spec.channels:
            wanted.setdefault(channel, []).append(spec.name)
    findings = []
    for channel, names in sorted(wanted.items()):
        missing = await unserved([channel], runtime.stores.providers, _file_docs(runtime.settings))
        if not missing:
            continue
        listed = ", ".join(sorted(names)[:5]) + (" …" if len(names) > 5 else "")
        fix = missing[0].partition(": ")[2].removeprefix("its events wait until one is ")
        findings.append(
            Finding(
                f"providers: {channel.value}",
                False,
                f"types {listed} list {channel.value} and no provider serves it: those sends wait",
                fix.strip("()"),
            )
        )
    if not findings:
        listed = ", ".join(sorted(c.value for c in wanted)) or "none yet"
        findings.append(
            Finding("providers", True, f"every channel the types list is served ({listed})")
        )
    return findings


def _file_docs(settings: Settings) -> dict[str, dict[str, Any]]:
    try:
        return read_file(settings.providers_file)
    except ClarionError:
        return {}


def _ca_files(docs: dict[str, dict[str, Any]]) -> list[Finding]:
    findings = []
    for name, doc in sorted(with_built_ins(docs).items()):
        ca = doc.get("ca_file")
        if not ca:
            continue
        path = Path(str(ca))
        if not path.is_file() or not os.access(path, os.R_OK):
            findings.append(
                Finding(
                    f"ca_file: {name}",
                    False,
                    f"provider {name} trusts {path}, which cannot be read",
                    f"make {path} readable by Clarion's user, or PUT /v1/providers/{name}"
                    " without ca_file to use the system's trust store",
                )
            )
        else:
            findings.append(Finding(f"ca_file: {name}", True, f"{path} readable"))
    return findings


async def _links(runtime: Runtime, docs: dict[str, dict[str, Any]]) -> list[Finding]:
    """Unsubscribe links in emails (and SMS status callbacks) use the public URL."""
    kinds = {channels.kind_of(name, doc) for name, doc in docs.items()}
    sends_email = any(channels.channel_of(k) is Channel.EMAIL for k in kinds)
    if not sends_email:
        return []
    url = runtime.settings.public_url
    host = urlsplit(url).hostname or ""
    if _local(host):
        return [
            Finding(
                "public_url",
                False,
                f"emails carry unsubscribe links to {url}, which only this machine can reach",
                "set CLARION_PUBLIC_URL to the address people reach this server at"
                " (https://notify.example.com)",
            )
        ]
    return [Finding("public_url", True, f"unsubscribe links point at {url}")]


def _local(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.endswith(".local") or host.endswith(".localhost")
    return address.is_loopback or address.is_private or address.is_unspecified
