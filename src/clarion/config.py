"""Settings: one frozen object, built from defaults, then the environment, then flags.

Every setting has an environment variable ``CLARION_<NAME>`` (``CLARION_DB``,
``CLARION_BATCH_SIZE`` …). Values are checked once, here, so nothing downstream has to.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarion.errors import ConfigError
from clarion.resilience.breaker import BreakerSettings


@dataclass(frozen=True, slots=True)
class Settings:
    db: Path = Path("clarion.db")
    """The SQLite file holding the queues and every store (the embedded backend)."""
    broker: str | None = None
    """Where the queues live: unset, in the SQLite file; ``redis://host:port/n``, in Redis
    Streams (``clarion.backends.redis.broker``)."""
    store: str | None = None
    """Where the stores live: unset, in the SQLite file (so every process runs on the
    machine that holds it); ``postgresql://…``, in PostgreSQL (``backends.postgres.stores``), which
    needs the queues in Redis too: then workers can run on any number of machines."""

    max_stream_len: int = 100_000
    """With a broker: messages a Redis stream holds before ingest's backlog stops moving
    there from the durable outbox (``clarion.broker.outbox``); nothing is dropped."""

    batch_size: int = 1000
    """Recipients per fan-out batch: one queue message, one store transaction downstream."""
    fanout_slice_batches: int = 50
    """Batches a fan-out worker produces per turn before handing the rest to a continuation."""

    lease_s: float = 30.0
    """How long a claimed message stays invisible before another worker may take it."""
    max_attempts: int = 5
    """Deliveries of one message before it is dead-lettered."""

    idempotency_window_s: float = 3600.0
    max_payload_bytes: int = 8192
    max_direct_recipients: int = 10_000
    max_batch_events: int = 1000
    default_type: str | None = None
    """When set, events of an unregistered type are handled as this type instead of refused."""
    rate_burst_s: float = 1.0
    """A sender's token bucket holds this many seconds' worth of its rate."""

    workers: int = 2
    """General worker processes started by ``clarion serve`` (all stages, all priorities)."""
    p0_workers: int = 1
    """Worker processes reserved for P0, so a bulk flood never queues an OTP behind it."""
    bulk_worker_nice: int = 10
    """With P0-reserved workers, the general ones run this much nicer (Unix niceness):
    under a flood that saturates the CPU, the OS runs the P0 path first."""

    log_level: str = "INFO"

    public_url: str = "http://127.0.0.1:8080"
    """Where people reach this server: unsubscribe links and SMS status callbacks use it."""
    allow_private_targets: bool = False
    """Let webhook and web-push URLs point at private networks (tests, closed networks)."""
    providers_file: Path | None = None
    """TOML or JSON: one table per provider; PUT /v1/providers/{name} overrides it."""
    signing_keys: str | None = None
    """Unsubscribe-link keys, "k2:secret,k1:old" (first signs); absent: one is generated."""
    user_token_keys: str | None = None
    """``"k2:<secret>,k1:<secret>"``: the keys user tokens are signed with (the first) and
    checked against (all); a product's backend holding one can mint its own. Unset: one
    is generated and kept in the store."""
    max_devices_per_user: int = 10

    breaker_error_rate: float = 0.3
    """Share of a provider's sends failing (5xx, timeouts) over the window that opens its
    breaker: sends stop, traffic moves to a secondary provider or the next channel."""
    breaker_window_s: float = 30.0
    breaker_min_requests: int = 20
    breaker_consecutive_failures: int = 50
    """This many failed sends in a row, with no success between, open the breaker too."""
    breaker_first_probe_s: float = 2.0
    breaker_probe_s: float = 30.0
    """While a breaker is open, one probe send decides whether to try again: the first
    ``breaker_first_probe_s`` after it opened, then twice as long after each failed probe,
    up to ``breaker_probe_s`` (which also caps the first)."""
    retry_share: float = 0.5
    """Retries may use at most this share of a provider's ``rate_per_s``."""

    load_shed_p2: int = 2000
    """Queued batches (awaiting evaluation or delivery) at which ingest answers 429 to P2
    and workers leave P2 waiting while anything more urgent is queued."""
    load_shed_p1: int = 10_000
    """… and at which P1 is refused too. P0 is never refused."""
    fanout_pause_depth: int = 200
    """A fan-out pauses while this many of its priority's batches wait for evaluation."""

    partition_threshold: int = 100_000
    """Creators with this many followers get precomputed follower partitions
    (``clarion partitions refresh``): their fan-out hands out partition references."""
    partition_size: int = 1000
    partition_max_age_s: float = 3600.0
    """A partition set not refreshed for this long is not trusted: fan-out reads the
    follower store live instead."""

    sender_strikes: int = 3
    sender_strike_window_s: float = 60.0
    """A sender with this many events dead-lettered within the window is cut off until an
    admin lets it back (``clarion senders unblock``)."""

    digest_template: str = "digest"
    """The template whose ``digest`` variant writes digest emails (built-in if none)."""

    campaign_lease_s: float = 30.0
    """How long a scheduler holds a campaign without writing before another takes it."""
    campaign_approval_over: int = 1_000_000
    """A campaign to more people than this waits for an admin's approval."""
    demo_user: str | None = None
    """Set (``clarion demo --ui``): ``/ui/demo`` shows this person's inbox widget."""

    ready_stuck_s: float = 300.0
    """``/v1/ready`` answers 503 while a stage's oldest due message has waited this long."""
    ready_worker_s: float = 15.0
    """… or while no worker has checked in (every second) for this long."""

    def breaker(self) -> BreakerSettings:
        return BreakerSettings(
            window_s=self.breaker_window_s,
            error_rate=self.breaker_error_rate,
            min_requests=self.breaker_min_requests,
            consecutive_failures=self.breaker_consecutive_failures,
            first_probe_s=min(self.breaker_first_probe_s, self.breaker_probe_s),
            probe_every_s=self.breaker_probe_s,
            retry_share=self.retry_share,
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; ``None`` values mean "keep the current one"."""
        kept = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **kept).validated()

    def validated(self) -> Settings:
        _check_range("batch_size", self.batch_size, 1, 100_000)
        _check_range("max_stream_len", self.max_stream_len, 1, 100_000_000)
        _check_range("fanout_slice_batches", self.fanout_slice_batches, 1, 10_000)
        _check_range("lease_s", self.lease_s, 0.1, 86_400)
        _check_range("max_attempts", self.max_attempts, 1, 100)
        _check_range("idempotency_window_s", self.idempotency_window_s, 1, 30 * 86_400)
        _check_range("max_payload_bytes", self.max_payload_bytes, 64, 1_048_576)
        _check_range("max_direct_recipients", self.max_direct_recipients, 1, 1_000_000)
        _check_range("max_batch_events", self.max_batch_events, 1, 100_000)
        _check_range("rate_burst_s", self.rate_burst_s, 0.01, 3600)
        _check_range("workers", self.workers, 0, 256)
        _check_range("p0_workers", self.p0_workers, 0, 256)
        _check_range("bulk_worker_nice", self.bulk_worker_nice, 0, 19)
        _check_range("max_devices_per_user", self.max_devices_per_user, 1, 1000)
        _check_range("breaker_error_rate", self.breaker_error_rate, 0.01, 1.0)
        _check_range("breaker_window_s", self.breaker_window_s, 1, 3600)
        _check_range("breaker_min_requests", self.breaker_min_requests, 1, 1_000_000)
        _check_range(
            "breaker_consecutive_failures", self.breaker_consecutive_failures, 1, 1_000_000
        )
        _check_range("breaker_first_probe_s", self.breaker_first_probe_s, 0.1, 3600)
        _check_range("breaker_probe_s", self.breaker_probe_s, 0.1, 3600)
        _check_range("retry_share", self.retry_share, 0.01, 1.0)
        _check_range("load_shed_p2", self.load_shed_p2, 1, 10_000_000)
        _check_range("load_shed_p1", self.load_shed_p1, self.load_shed_p2, 10_000_000)
        _check_range("fanout_pause_depth", self.fanout_pause_depth, 1, 10_000_000)
        _check_range("partition_threshold", self.partition_threshold, 1, 10**10)
        _check_range("partition_size", self.partition_size, 1, 100_000)
        _check_range("partition_max_age_s", self.partition_max_age_s, 1, 30 * 86_400)
        _check_range("sender_strikes", self.sender_strikes, 1, 1000)
        _check_range("sender_strike_window_s", self.sender_strike_window_s, 1, 86_400)
        if self.broker is not None and not self.broker.startswith(_BROKER_SCHEMES):
            raise ConfigError(
                f"broker must be a redis:// (or rediss://, unix://) URL, got {self.broker!r};"
                " leave it unset for the embedded SQLite queues"
            )
        if self.store is not None:
            if not self.store.startswith(_STORE_SCHEMES):
                raise ConfigError(
                    f"store must be a postgresql:// URL, got {self.store!r};"
                    " leave it unset for the embedded SQLite stores"
                )
            if self.broker is None:
                raise ConfigError(
                    "with the stores in PostgreSQL the queues must be in Redis: add --broker"
                    " redis://host:port/n (or CLARION_BROKER); SQLite queues cannot join a"
                    " PostgreSQL transaction"
                )
        if not self.public_url.startswith(("http://", "https://")):
            raise ConfigError(f"public_url must be an http(s) URL, got {self.public_url!r}")
        return self

    def to_env(self) -> dict[str, str]:
        """The ``CLARION_*`` variables that rebuild these settings in a child process."""
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                env[f"CLARION_{f.name.upper()}"] = str(value)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"CLARION_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            convert = _CONVERTERS.get(f.name, str)
            try:
                values[f.name] = convert(raw)
            except ValueError:
                raise ConfigError(
                    f"CLARION_{f.name.upper()}={raw!r} is not a valid {f.name}"
                ) from None
        return cls(**values).validated()


_BROKER_SCHEMES = ("redis://", "rediss://", "unix://")
_STORE_SCHEMES = ("postgresql://", "postgres://")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "db": Path,
    "broker": str,
    "store": str,
    "max_stream_len": int,
    "batch_size": int,
    "fanout_slice_batches": int,
    "lease_s": float,
    "max_attempts": int,
    "idempotency_window_s": float,
    "max_payload_bytes": int,
    "max_direct_recipients": int,
    "max_batch_events": int,
    "rate_burst_s": float,
    "workers": int,
    "p0_workers": int,
    "bulk_worker_nice": int,
    "allow_private_targets": lambda v: _flag(v),
    "providers_file": Path,
    "max_devices_per_user": int,
    "breaker_error_rate": float,
    "breaker_window_s": float,
    "breaker_min_requests": int,
    "breaker_consecutive_failures": int,
    "breaker_first_probe_s": float,
    "breaker_probe_s": float,
    "retry_share": float,
    "load_shed_p2": int,
    "load_shed_p1": int,
    "fanout_pause_depth": int,
    "partition_threshold": int,
    "partition_size": int,
    "partition_max_age_s": float,
    "sender_strikes": int,
    "sender_strike_window_s": float,
    "digest_template": str,
    "user_token_keys": str,
    "ready_stuck_s": float,
    "demo_user": str,
    "campaign_approval_over": int,
    "campaign_lease_s": float,
    "ready_worker_s": float,
}


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)
