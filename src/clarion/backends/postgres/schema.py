"""The PostgreSQL stores' tables, one migration per schema version.

Applied on first use by every process (under an advisory lock, so many starting at once
apply each step once) or ahead of time with ``clarion db upgrade``. The hot tables follow
seed 001 Part 7:

* ``inbox`` is keyed ``(user_id, seq)``: one index gives "newest 20 of user X" (``seq``
  grows with every accepted event) and makes a second entry for the same event impossible.
* ``deliveries`` — the delivery log, the biggest table — is partitioned by day on ``at``;
  ``ensure_log_partitions`` keeps the next days' partitions created, old ones can be
  detached or dropped whole, and a default partition catches anything outside them.
* ``outbox`` holds what ingest commits for the broker (Redis) until a relay moves it.

Times are seconds since the epoch on Clarion's clock (``double precision``), as in SQLite.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

_LOCK = 0x436C6172  # "Clar": the advisory lock migrations and partition upkeep hold

_V1 = """
CREATE TABLE api_keys (
    key_hash text PRIMARY KEY, key_id text NOT NULL UNIQUE, sender text NOT NULL, types text,
    rate_per_s double precision, admin boolean NOT NULL DEFAULT false,
    created_at double precision NOT NULL, revoked_at double precision
);
CREATE TABLE notification_types (
    name text PRIMARY KEY, spec text NOT NULL, updated_at double precision NOT NULL
);
CREATE TABLE users (
    user_id text PRIMARY KEY, email text, phone text, timezone text, locale text,
    updated_at double precision NOT NULL, email_verified boolean NOT NULL DEFAULT false,
    phone_verified boolean NOT NULL DEFAULT false, email_bounced_at double precision
);
CREATE TABLE devices (
    user_id text NOT NULL, device_id text NOT NULL, platform text NOT NULL, token text NOT NULL,
    meta text NOT NULL DEFAULT '{}', app_version text, state text NOT NULL,
    registered_at double precision NOT NULL, last_seen double precision NOT NULL,
    invalidated_at double precision, reason text,
    PRIMARY KEY (user_id, device_id)
);
CREATE UNIQUE INDEX devices_by_token ON devices (platform, token);
CREATE TABLE templates (
    template_id text NOT NULL, version integer NOT NULL, doc text NOT NULL,
    created_at double precision NOT NULL, created_by text NOT NULL,
    PRIMARY KEY (template_id, version)
);
CREATE TABLE providers (
    name text PRIMARY KEY, doc text NOT NULL, updated_at double precision NOT NULL
);
CREATE TABLE provider_tokens (
    name text PRIMARY KEY, token text NOT NULL, issued_at double precision NOT NULL
);
CREATE TABLE status_hooks (
    id text PRIMARY KEY, sender text NOT NULL, url text NOT NULL, events text NOT NULL,
    secrets text NOT NULL, created_at double precision NOT NULL, disabled_at double precision
);
CREATE TABLE secrets (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE followers (
    creator_id text NOT NULL, follower_id text NOT NULL, PRIMARY KEY (creator_id, follower_id)
);
CREATE TABLE follower_counts (creator_id text PRIMARY KEY, count bigint NOT NULL);
CREATE TABLE preferences (
    user_id text PRIMARY KEY, doc text NOT NULL, version integer NOT NULL,
    updated_at double precision NOT NULL
);
CREATE SEQUENCE events_seq;
CREATE TABLE events (
    seq bigint PRIMARY KEY, event_id text NOT NULL UNIQUE, sender text NOT NULL,
    type text NOT NULL, priority text NOT NULL, fan_out text NOT NULL, actor text, target text,
    object text, campaign text, template text, template_version integer, collapse_key text,
    title text NOT NULL, body text NOT NULL, payload text NOT NULL,
    created_at double precision NOT NULL, expires_at double precision NOT NULL,
    state text NOT NULL, recipients bigint NOT NULL DEFAULT 0, batches_total bigint,
    batches_done bigint NOT NULL DEFAULT 0, fanout_next_batch bigint NOT NULL DEFAULT 0,
    delivered bigint NOT NULL DEFAULT 0, suppressed bigint NOT NULL DEFAULT 0,
    held bigint NOT NULL DEFAULT 0, failed bigint NOT NULL DEFAULT 0,
    first_delivery_at double precision, completed_at double precision, error text
);
CREATE TABLE idempotency (
    key text PRIMARY KEY, event_id text NOT NULL, expires_at double precision NOT NULL
);
CREATE TABLE rate_buckets (
    sender text PRIMARY KEY, tokens double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE batches (
    seq bigint NOT NULL, batch_key text NOT NULL, worker text NOT NULL,
    recipients integer NOT NULL, done_at double precision NOT NULL,
    PRIMARY KEY (seq, batch_key)
);
CREATE TABLE inbox (
    user_id text NOT NULL, seq bigint NOT NULL, read_at double precision,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX inbox_by_event ON inbox (seq);
CREATE TABLE deliveries (
    id bigserial, user_id text NOT NULL, seq bigint NOT NULL, channel text NOT NULL,
    attempt integer NOT NULL, outcome text NOT NULL, reason text,
    at double precision NOT NULL, provider_ref text
) PARTITION BY RANGE (at);
CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT;
CREATE INDEX deliveries_by_user ON deliveries (user_id, seq);
CREATE INDEX deliveries_by_ref ON deliveries (provider_ref) WHERE provider_ref IS NOT NULL;
CREATE TABLE outbox (
    id bigserial PRIMARY KEY, topic text NOT NULL, body bytea NOT NULL,
    enqueued_at double precision NOT NULL, available_at double precision NOT NULL,
    attempts integer NOT NULL DEFAULT 0, lease bigint
);
CREATE INDEX outbox_ready ON outbox (topic, available_at);
CREATE TABLE frequency (user_id text PRIMARY KEY, stamps double precision[] NOT NULL);
CREATE TABLE kill_switches (
    id text PRIMARY KEY, kind text NOT NULL, value text NOT NULL, reason text NOT NULL,
    created_at double precision NOT NULL, created_by text NOT NULL,
    lifted_at double precision, lifted_by text
);
CREATE TABLE audit (
    id bigserial PRIMARY KEY, kind text NOT NULL, subject text NOT NULL, actor text NOT NULL,
    at double precision NOT NULL, before text, after text
);
CREATE INDEX audit_by_subject ON audit (kind, subject, id);
CREATE TABLE worker_stats (
    worker text NOT NULL, stage text NOT NULL, messages bigint NOT NULL, items bigint NOT NULL,
    busy_s double precision NOT NULL, updated_at double precision NOT NULL,
    PRIMARY KEY (worker, stage)
);
CREATE TABLE sender_strikes (
    sender text NOT NULL, at double precision NOT NULL, error text NOT NULL
);
CREATE INDEX sender_strikes_by_sender ON sender_strikes (sender, at);
CREATE TABLE sender_blocks (
    sender text PRIMARY KEY, blocked_at double precision NOT NULL, reason text NOT NULL
);
CREATE TABLE partition_sets (
    creator_id text PRIMARY KEY, generation integer NOT NULL, size integer NOT NULL,
    followers bigint NOT NULL, built_at double precision NOT NULL,
    refreshed_at double precision NOT NULL
);
CREATE TABLE partitions (
    creator_id text NOT NULL, part_no integer NOT NULL, upto text, count integer NOT NULL,
    members text[] NOT NULL, PRIMARY KEY (creator_id, part_no)
);
CREATE TABLE follower_changes (
    id bigserial PRIMARY KEY, creator_id text NOT NULL, follower_id text NOT NULL,
    added boolean NOT NULL
);
CREATE INDEX follower_changes_by_creator ON follower_changes (creator_id, id)
"""

_V2 = """
CREATE TABLE frequency_slots (
    user_id text NOT NULL, seq bigint NOT NULL, at double precision NOT NULL,
    PRIMARY KEY (user_id, seq)
);
INSERT INTO frequency_slots (user_id, seq, at)
SELECT f.user_id, -s.n, s.at FROM frequency f, unnest(f.stamps) WITH ORDINALITY AS s(at, n);
DROP TABLE frequency
"""
"""Version 2: frequency caps count places keyed by event (``policy.frequency.allot``), so a
place can be reserved before delivery and asked for again by a redelivery. Counts from
version 1's per-person arrays carry over under negative seqs, which no event has."""

_V3 = """
CREATE TABLE aggregates (
    user_id text NOT NULL, type text NOT NULL, object text NOT NULL, state text NOT NULL,
    PRIMARY KEY (user_id, type, object)
);
CREATE TABLE aggregate_members (
    user_id text NOT NULL, type text NOT NULL, object text NOT NULL, seq bigint NOT NULL,
    win integer NOT NULL, joined text NOT NULL,
    PRIMARY KEY (user_id, type, object, seq)
);
ALTER TABLE inbox ADD COLUMN aggregate text;
CREATE TABLE collapse (
    user_id text NOT NULL, key text NOT NULL, seq bigint NOT NULL,
    created_at double precision NOT NULL, PRIMARY KEY (user_id, key)
);
CREATE TABLE digests (
    user_id text NOT NULL, due_at double precision NOT NULL, scheduled_by bigint NOT NULL,
    digest_id text, PRIMARY KEY (user_id, due_at)
);
CREATE TABLE digest_items (
    user_id text NOT NULL, due_at double precision NOT NULL, item bigint NOT NULL,
    seq bigint NOT NULL, entry bigint, PRIMARY KEY (user_id, due_at, item)
);
CREATE TABLE stream_heads (
    user_id text PRIMARY KEY, epoch text NOT NULL, pos bigint NOT NULL,
    active_until double precision NOT NULL
);
CREATE TABLE stream_log (
    id bigserial PRIMARY KEY, user_id text NOT NULL, epoch text NOT NULL, pos bigint NOT NULL,
    kind text NOT NULL, body text NOT NULL, at double precision NOT NULL, origin text,
    critical boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX stream_log_by_user ON stream_log (user_id, pos);
CREATE TABLE stream_tickets (
    ticket text PRIMARY KEY, user_id text NOT NULL, expires_at double precision NOT NULL
);
CREATE TABLE stream_acks (
    user_id text NOT NULL, device_id text NOT NULL, epoch text NOT NULL, pos bigint NOT NULL,
    at double precision NOT NULL, PRIMARY KEY (user_id, device_id)
);
CREATE TABLE user_state (
    user_id text NOT NULL, key text NOT NULL, value text NOT NULL, version bigint NOT NULL,
    updated_at double precision NOT NULL, PRIMARY KEY (user_id, key)
)
"""
"""Version 3: aggregation windows (``policy.aggregation``): one state per (recipient, type,
object) and the answer each notification got (kept for its redelivery); an inbox entry's
``aggregate`` is ``[count, [actors…], last_at]`` once more than its own event is on it.
And latest-wins collapse: per (recipient, collapse key), the newest event and when it was
created (``pipeline.collapse``); digests: per person and due time, who scheduled it,
its id once taken for sending, and its items (``policy.digest``); and live sync
(``live``): each person's stream head and bounded log, stream tickets, what each device
acknowledged, and keyed state."""

_V4 = """
CREATE TABLE worker_beats (worker text PRIMARY KEY, at double precision NOT NULL);
ALTER TABLE events ADD COLUMN traceparent text;
CREATE INDEX events_by_trace ON events (substr(traceparent, 4, 32)) WHERE traceparent IS NOT NULL
"""
"""Version 4: each worker's last heartbeat (``/v1/ready``), and the W3C ``traceparent`` an
event was sent with, found by its trace id."""

_V5 = """
CREATE TABLE schedules (
    id text PRIMARY KEY, sender text NOT NULL, cron text NOT NULL, timezone text NOT NULL,
    event text NOT NULL, next_run_at double precision NOT NULL,
    last_run_at double precision, created_at double precision NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at)
"""
"""Version 5: recurring sends (``scheduling``): a cron expression in a zone, the event to
send, and the next run (advanced by compare-and-set, so one scheduler runs each)."""

_V6 = """
ALTER TABLE users ADD COLUMN attributes jsonb;
CREATE TABLE audiences (
    id text PRIMARY KEY, sender text NOT NULL, name text NOT NULL, size bigint NOT NULL,
    created_at double precision NOT NULL
);
CREATE TABLE audience_members (
    audience_id text NOT NULL, user_id text NOT NULL, PRIMARY KEY (audience_id, user_id)
);
CREATE TABLE campaigns (
    id text PRIMARY KEY, sender text NOT NULL, doc text NOT NULL, state text NOT NULL,
    start_at double precision NOT NULL, rollout_percent integer NOT NULL, seq bigint,
    band_from integer NOT NULL DEFAULT 0, band_to integer NOT NULL DEFAULT 0, cursor text,
    pages bigint NOT NULL DEFAULT 0, targeted bigint NOT NULL DEFAULT 0,
    token bigint NOT NULL DEFAULT 0, lease_owner text,
    lease_until double precision NOT NULL DEFAULT 0,
    paced_until double precision NOT NULL DEFAULT 0,
    created_at double precision NOT NULL, updated_at double precision NOT NULL
);
CREATE INDEX campaigns_by_state ON campaigns (state, start_at)
"""
"""Version 6: people's attributes (segments filter on them), uploaded audiences, and
campaigns: what to send to whom, their state, and the expansion's checkpoint under a
lease with a fencing token (``scheduling.campaigns``)."""

_V7 = """
CREATE TABLE suppressions (
    seq bigint NOT NULL,
    reason text NOT NULL,
    people bigint NOT NULL,
    PRIMARY KEY (seq, reason)
)
"""
"""Version 7: each event's suppressions by reason (a campaign's progress shows them)."""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)

LOG_DAYS_AHEAD = 7


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the database up to the newest schema; returns the version it is at."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS clarion_schema (version integer NOT NULL)")
        current = await conn.fetchval("SELECT max(version) FROM clarion_schema") or 0
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(script)
            await conn.execute("INSERT INTO clarion_schema (version) VALUES ($1)", version)
    return len(MIGRATIONS)


async def ensure_log_partitions(conn: asyncpg.Connection, now: float) -> list[str]:
    """Create the delivery log's daily partitions from today to ``LOG_DAYS_AHEAD`` days on;
    returns the names it created. Run at start and by ``clarion db upgrade``."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    created = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        for offset in range(LOG_DAYS_AHEAD + 1):
            day = today + dt.timedelta(days=offset)
            name = f"deliveries_{day:%Y%m%d}"
            if await conn.fetchval("SELECT to_regclass($1)", name) is not None:
                continue
            start = dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()
            # Rows for that day that the default partition took meanwhile move over first.
            await conn.execute(f"CREATE TABLE {name} (LIKE deliveries INCLUDING DEFAULTS)")
            await conn.execute(
                f"WITH moved AS (DELETE FROM deliveries_default WHERE at >= $1 AND at < $2"
                f" RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                start,
                start + 86_400,
            )
            await conn.execute(
                f"ALTER TABLE deliveries ATTACH PARTITION {name}"
                f" FOR VALUES FROM ({start!r}) TO ({start + 86_400!r})"
            )
            created.append(name)
    return created


async def clarion_rows(conn: asyncpg.Connection) -> int:
    """How many events the database holds (0 also when Clarion's schema is not there)."""
    if await conn.fetchval("SELECT to_regclass('events')") is None:
        return 0
    return int(await conn.fetchval("SELECT count(*) FROM events"))


async def empty_all(conn: asyncpg.Connection) -> None:
    """Every Clarion table emptied and every counter restarted: for a benchmark's own
    database after its run, and for tests. Never pointed at a database others use."""
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        " AND tablename <> 'clarion_schema' AND tablename NOT LIKE 'deliveries_%'"
    )
    names = ", ".join(f'"{t[0]}"' for t in tables)
    await conn.execute(f"TRUNCATE {names} RESTART IDENTITY")
    await conn.execute("ALTER SEQUENCE events_seq RESTART")
