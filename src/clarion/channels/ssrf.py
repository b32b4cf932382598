"""Refusing to send to private networks: webhook URLs and web-push endpoints are user input.

The check runs twice: when a URL is registered (a clear 400) and when a connection is made
(the resolver drops private addresses), so a hostname that later resolves to 127.0.0.1 or
the cloud metadata address cannot be used to reach inside the network. The
``allow_private_targets`` setting (``CLARION_ALLOW_PRIVATE_TARGETS=1``) turns this off for
tests and closed networks.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult


class PrivateTargetError(ValueError):
    """The URL points at a private, loopback, link-local or otherwise internal address."""


def is_public_ip(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (
            isinstance(ip, ipaddress.IPv6Address)
            and ip.ipv4_mapped is not None
            and not is_public_ip(str(ip.ipv4_mapped))
        )
    )


def check_target(url: str, *, allow_private: bool) -> str:
    """Validate a user-supplied target URL; returns it or raises PrivateTargetError."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise PrivateTargetError("must be an http(s) URL with a host")
    if allow_private:
        return url
    if parts.scheme != "https":
        raise PrivateTargetError("must use https")
    host = parts.hostname
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        raise PrivateTargetError(f"{host} is a private host")
    try:
        if not is_public_ip(host):
            raise PrivateTargetError(f"{host} is a private address")
    except ValueError as exc:
        if isinstance(exc, PrivateTargetError):
            raise
    return url


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp does, then keeps only public addresses."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        public = [r for r in results if is_public_ip(r["host"])]
        if not public:
            raise OSError(f"refusing to connect to {host}: it resolves to a private address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def http_session(
    *, allow_private: bool, ca_file: str | None = None, limit: int = 200, timeout_s: float = 10.0
) -> aiohttp.ClientSession:
    """The long-lived HTTP/1.1 session of an HTTP provider (one per provider per worker)."""
    import ssl

    tls: Any = ssl.create_default_context(cafile=ca_file) if ca_file else None
    connector = aiohttp.TCPConnector(
        limit=limit,
        ssl=tls if tls is not None else True,
        resolver=None if allow_private else PublicOnlyResolver(),
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)
    )
