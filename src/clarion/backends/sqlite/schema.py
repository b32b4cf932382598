"""The embedded backend's tables, one migration per schema version (``PRAGMA user_version``).

Hot tables are shaped for the bulk paths:

* ``inbox`` is WITHOUT ROWID keyed ``(user_id, seq)``: one B-tree gives "newest 20 of user X"
  (``seq`` grows with every accepted event), makes a second entry for the same user and
  event impossible, and takes a fan-out batch in one ``INSERT … SELECT FROM json_each``.
* ``deliveries`` is an append-only log (rowid order is time order) with a ``(user_id, seq)``
  index for "why didn't user X get notified?".
* ``queue`` holds every broker queue; ``(topic, available_at)`` makes a claim an index seek
  however deep other topics are.
"""

from __future__ import annotations

import sqlite3

_V1 = """
CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL UNIQUE,
    sender      TEXT NOT NULL,
    types       TEXT,
    rate_per_s  REAL,
    admin       INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    revoked_at  REAL
);

CREATE TABLE notification_types (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    user_id          TEXT PRIMARY KEY,
    email            TEXT,
    phone            TEXT,
    timezone         TEXT,
    locale           TEXT,
    updated_at       REAL NOT NULL,
    email_verified   INTEGER NOT NULL DEFAULT 0,
    phone_verified   INTEGER NOT NULL DEFAULT 0,
    email_bounced_at REAL
) WITHOUT ROWID;

CREATE TABLE devices (
    user_id        TEXT NOT NULL,
    device_id      TEXT NOT NULL,
    platform       TEXT NOT NULL,
    token          TEXT NOT NULL,
    meta           TEXT NOT NULL DEFAULT '{}',
    app_version    TEXT,
    state          TEXT NOT NULL,
    registered_at  REAL NOT NULL,
    last_seen      REAL NOT NULL,
    invalidated_at REAL,
    reason         TEXT,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX devices_by_token ON devices (platform, token);

CREATE TABLE templates (
    template_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL,
    created_at  REAL NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (template_id, version)
) WITHOUT ROWID;

CREATE TABLE providers (
    name        TEXT PRIMARY KEY,
    doc         TEXT NOT NULL,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE provider_tokens (
    name        TEXT PRIMARY KEY,
    token       TEXT NOT NULL,
    issued_at   REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE status_hooks (
    id          TEXT PRIMARY KEY,
    sender      TEXT NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    secrets     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    disabled_at REAL
) WITHOUT ROWID;

CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE followers (
    creator_id  TEXT NOT NULL,
    follower_id TEXT NOT NULL,
    PRIMARY KEY (creator_id, follower_id)
) WITHOUT ROWID;

CREATE TABLE follower_counts (
    creator_id  TEXT PRIMARY KEY,
    count       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE preferences (
    user_id     TEXT PRIMARY KEY,
    doc         TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE events (
    seq               INTEGER PRIMARY KEY,
    event_id          TEXT NOT NULL UNIQUE,
    sender            TEXT NOT NULL,
    type              TEXT NOT NULL,
    priority          TEXT NOT NULL,
    fan_out           TEXT NOT NULL,
    actor             TEXT,
    target            TEXT,
    object            TEXT,
    campaign          TEXT,
    template          TEXT,
    template_version  INTEGER,
    collapse_key      TEXT,
    title             TEXT NOT NULL,
    body              TEXT NOT NULL,
    payload           TEXT NOT NULL,
    created_at        REAL NOT NULL,
    expires_at        REAL NOT NULL,
    state             TEXT NOT NULL,
    recipients        INTEGER NOT NULL DEFAULT 0,
    batches_total     INTEGER,
    batches_done      INTEGER NOT NULL DEFAULT 0,
    fanout_next_batch INTEGER NOT NULL DEFAULT 0,
    delivered         INTEGER NOT NULL DEFAULT 0,
    suppressed        INTEGER NOT NULL DEFAULT 0,
    held              INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    first_delivery_at REAL,
    completed_at      REAL,
    error             TEXT
);

CREATE TABLE idempotency (
    key         TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    expires_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE rate_buckets (
    sender      TEXT PRIMARY KEY,
    tokens      REAL NOT NULL,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE batches (
    seq         INTEGER NOT NULL,
    batch_key   TEXT NOT NULL,
    worker      TEXT NOT NULL,
    recipients  INTEGER NOT NULL,
    done_at     REAL NOT NULL,
    PRIMARY KEY (seq, batch_key)
) WITHOUT ROWID;

CREATE TABLE inbox (
    user_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    read_at     REAL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;

CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    user_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    at          REAL NOT NULL,
    provider_ref TEXT
);
CREATE INDEX deliveries_by_user ON deliveries (user_id, seq);
CREATE INDEX deliveries_by_ref ON deliveries (provider_ref) WHERE provider_ref IS NOT NULL;

CREATE TABLE queue (
    id          INTEGER PRIMARY KEY,
    topic       TEXT NOT NULL,
    available_at REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease       INTEGER,
    enqueued_at REAL NOT NULL,
    body        BLOB NOT NULL
);
CREATE INDEX queue_ready ON queue (topic, available_at);

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY,
    topic       TEXT NOT NULL,
    body        BLOB NOT NULL,
    attempts    INTEGER NOT NULL,
    error       TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    failed_at   REAL NOT NULL
);

CREATE TABLE frequency (
    user_id     TEXT PRIMARY KEY,
    stamps      TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE kill_switches (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    created_by  TEXT NOT NULL,
    lifted_at   REAL,
    lifted_by   TEXT
) WITHOUT ROWID;

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          REAL NOT NULL,
    before      TEXT,
    after       TEXT
);
CREATE INDEX audit_by_subject ON audit (kind, subject, id);

CREATE TABLE worker_stats (
    worker      TEXT NOT NULL,
    stage       TEXT NOT NULL,
    messages    INTEGER NOT NULL,
    items       INTEGER NOT NULL,
    busy_s      REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (worker, stage)
) WITHOUT ROWID;
"""

_V2 = """
CREATE TABLE provider_health (
    provider    TEXT PRIMARY KEY,
    doc         TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE sender_strikes (
    sender      TEXT NOT NULL,
    at          REAL NOT NULL,
    error       TEXT NOT NULL
);
CREATE INDEX sender_strikes_by_sender ON sender_strikes (sender, at);

CREATE TABLE sender_blocks (
    sender      TEXT PRIMARY KEY,
    blocked_at  REAL NOT NULL,
    reason      TEXT NOT NULL
) WITHOUT ROWID
"""
"""Version 2: resilience — provider breakers, and the per-sender dead-letter guard."""

_V3 = """
CREATE TABLE partition_sets (
    creator_id   TEXT PRIMARY KEY,
    generation   INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    followers    INTEGER NOT NULL,
    built_at     REAL NOT NULL,
    refreshed_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE partitions (
    creator_id  TEXT NOT NULL,
    part_no     INTEGER NOT NULL,
    upto        TEXT,
    count       INTEGER NOT NULL,
    members     BLOB NOT NULL,
    PRIMARY KEY (creator_id, part_no)
) WITHOUT ROWID;

CREATE TABLE follower_changes (
    id          INTEGER PRIMARY KEY,
    creator_id  TEXT NOT NULL,
    follower_id TEXT NOT NULL,
    added       INTEGER NOT NULL
);
CREATE INDEX follower_changes_by_creator ON follower_changes (creator_id, id)
"""
"""Version 3: precomputed follower partitions of big accounts, and the follow/unfollow log
that keeps them current (only creators with a partition set are logged). ``members`` is a
JSON array of ids in order; ``upto`` the highest id the partition covers (NULL: the last)."""

_V4 = """
CREATE TABLE frequency_slots (
    user_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at          REAL NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;

INSERT INTO frequency_slots (user_id, seq, at)
SELECT f.user_id, -1 - j.key, j.value FROM frequency f, json_each(f.stamps) j;

DROP TABLE frequency
"""
"""Version 4: frequency caps count places keyed by event (``policy.frequency.allot``), so a
place can be reserved before delivery and asked for again by a redelivery. Counts from
version 3's per-person arrays carry over under negative seqs, which no event has."""

_V5 = """
CREATE TABLE aggregates (
    user_id     TEXT NOT NULL,
    type        TEXT NOT NULL,
    object      TEXT NOT NULL,
    state       TEXT NOT NULL,
    PRIMARY KEY (user_id, type, object)
) WITHOUT ROWID;

CREATE TABLE aggregate_members (
    user_id     TEXT NOT NULL,
    type        TEXT NOT NULL,
    object      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    win         INTEGER NOT NULL,
    joined      TEXT NOT NULL,
    PRIMARY KEY (user_id, type, object, seq)
) WITHOUT ROWID;

ALTER TABLE inbox ADD COLUMN aggregate TEXT;

CREATE TABLE collapse (
    user_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;

CREATE TABLE digests (
    user_id      TEXT NOT NULL,
    due_at       REAL NOT NULL,
    scheduled_by INTEGER NOT NULL,
    digest_id    TEXT,
    PRIMARY KEY (user_id, due_at)
) WITHOUT ROWID;

CREATE TABLE digest_items (
    user_id     TEXT NOT NULL,
    due_at      REAL NOT NULL,
    item        INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    entry       INTEGER,
    PRIMARY KEY (user_id, due_at, item)
) WITHOUT ROWID;

CREATE TABLE stream_heads (
    user_id      TEXT PRIMARY KEY,
    epoch        TEXT NOT NULL,
    pos          INTEGER NOT NULL,
    active_until REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE stream_log (
    id          INTEGER PRIMARY KEY,
    user_id     TEXT NOT NULL,
    epoch       TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    at          REAL NOT NULL,
    origin      TEXT,
    critical    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX stream_log_by_user ON stream_log (user_id, pos);

CREATE TABLE stream_tickets (
    ticket      TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    expires_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE stream_acks (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    epoch       TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    at          REAL NOT NULL,
    PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;

CREATE TABLE user_state (
    user_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID
"""
"""Version 5: aggregation windows (``policy.aggregation``): one state per (recipient, type,
object) and the answer each notification got (kept for its redelivery); an inbox entry's
``aggregate`` is ``[count, [actors…], last_at]`` once more than its own event is on it.
And latest-wins collapse: per (recipient, collapse key), the newest event and when it was
created (``pipeline.collapse``); digests: per person and due time, who scheduled it,
its id once taken for sending, and its items (``policy.digest``); and live sync
(``live``): each person's stream head and bounded log, stream tickets, what each device
acknowledged, and keyed state."""

_V6 = """
CREATE TABLE worker_beats (
    worker      TEXT PRIMARY KEY,
    at          REAL NOT NULL
) WITHOUT ROWID;

ALTER TABLE events ADD COLUMN traceparent TEXT;
CREATE INDEX events_by_trace ON events (substr(traceparent, 4, 32)) WHERE traceparent IS NOT NULL
"""
"""Version 6: each worker's last heartbeat (``/v1/ready``), and the W3C ``traceparent`` an
event was sent with, found by its trace id."""

_V7 = """
CREATE TABLE schedules (
    id          TEXT PRIMARY KEY,
    sender      TEXT NOT NULL,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    event       TEXT NOT NULL,
    next_run_at REAL NOT NULL,
    last_run_at REAL,
    created_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules (next_run_at)
"""
"""Version 7: recurring sends (``scheduling``): a cron expression in a zone, the event to
send, and the next run (advanced by compare-and-set, so one scheduler runs each)."""

_V8 = """
ALTER TABLE users ADD COLUMN attributes TEXT;

CREATE TABLE audiences (
    id          TEXT PRIMARY KEY,
    sender      TEXT NOT NULL,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    created_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE audience_members (
    audience_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    PRIMARY KEY (audience_id, user_id)
) WITHOUT ROWID;

CREATE TABLE campaigns (
    id              TEXT PRIMARY KEY,
    sender          TEXT NOT NULL,
    doc             TEXT NOT NULL,
    state           TEXT NOT NULL,
    start_at        REAL NOT NULL,
    rollout_percent INTEGER NOT NULL,
    seq             INTEGER,
    band_from       INTEGER NOT NULL DEFAULT 0,
    band_to         INTEGER NOT NULL DEFAULT 0,
    cursor          TEXT,
    pages           INTEGER NOT NULL DEFAULT 0,
    targeted        INTEGER NOT NULL DEFAULT 0,
    token           INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     REAL NOT NULL DEFAULT 0,
    paced_until     REAL NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX campaigns_by_state ON campaigns (state, start_at)
"""
"""Version 8: people's attributes (segments filter on them), uploaded audiences, and
campaigns: what to send to whom, their state, and the expansion's checkpoint under a
lease with a fencing token (``scheduling.campaigns``)."""

_V9 = """
CREATE TABLE preference_changes (
    n           INTEGER PRIMARY KEY,
    user_id     TEXT NOT NULL
);
CREATE TRIGGER preferences_inserted AFTER INSERT ON preferences
BEGIN INSERT INTO preference_changes (user_id) VALUES (new.user_id); END;
CREATE TRIGGER preferences_updated AFTER UPDATE ON preferences
BEGIN INSERT INTO preference_changes (user_id) VALUES (new.user_id); END;
CREATE TRIGGER preferences_deleted AFTER DELETE ON preferences
BEGIN INSERT INTO preference_changes (user_id) VALUES (old.user_id); END
"""
"""Version 9: a log of whose preferences changed, written by triggers so no writer can skip
it: evaluators remember the documents they read and forget those the log names
(``backends.sqlite.stores.preferences``). SQLite's one writer makes ``n`` commit order."""

_V10 = """
CREATE TABLE suppressions (
    seq         INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    people      INTEGER NOT NULL,
    PRIMARY KEY (seq, reason)
) WITHOUT ROWID
"""
"""Version 10: each event's suppressions by reason (a campaign's progress shows them), kept
as counters by the commit that records the outcomes (``stores.rows.suppression_rows``)."""

_V11 = """
CREATE TABLE frequency_places (
    user_id     TEXT PRIMARY KEY,
    places      TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO frequency_places (user_id, places)
SELECT user_id, json_group_array(json(json_array(seq, at))) FROM frequency_slots GROUP BY user_id;

UPDATE frequency_places SET places = (
    SELECT json_group_array(v.value) FROM json_each(frequency_places.places) p, json_each(p.value) v
);

DROP TABLE frequency_slots
"""
"""Version 11: a capped person's places are one row, ``places`` a flat JSON array
``[seq, at, seq, at, …]``: a claim reads a few hundred capped people, and one row each
costs half of one row per place (measured: 0.6 against 1.2 ms for 512 people)."""

_V12 = """
CREATE TABLE aggregate_answers (
    id          INTEGER PRIMARY KEY,
    seq         INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    type        TEXT NOT NULL,
    object      TEXT NOT NULL,
    joined      TEXT NOT NULL,
    at          REAL NOT NULL
);
CREATE UNIQUE INDEX aggregate_answers_by_event ON aggregate_answers (seq, user_id, type, object);

INSERT INTO aggregate_answers (seq, user_id, type, object, joined, at)
SELECT seq, user_id, type, object, joined, (julianday('now') - 2440587.5) * 86400.0
FROM aggregate_members ORDER BY seq;

DROP TABLE aggregate_members
"""
"""Version 12: a notification's answer is filed by its event, in arrival order, and pruned
by age (``backends.sqlite.stores.aggregates``): a commit's cost is the pages it dirties,
and filed by key, a claim of 2,000 likes on 10,000 photos wrote into nearly as many pages
(``clarion bench aggregate --events 300000``, interleaved runs: 4.9K, 5.4K and 6.7K
likes/s before, 6.9K and 7.1K after; at 1,000,000 likes the figure is held by ingest,
4.6K before, 4.6K and 5.4K after)."""

_V13 = """
ALTER TABLE stream_log ADD COLUMN prev INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stream_heads ADD COLUMN last_id INTEGER NOT NULL DEFAULT 0;

UPDATE stream_log SET prev = coalesce((
    SELECT p.id FROM stream_log p
    WHERE p.user_id = stream_log.user_id AND p.pos = stream_log.pos - 1
), 0);
UPDATE stream_heads SET last_id = coalesce((
    SELECT l.id FROM stream_log l
    WHERE l.user_id = stream_heads.user_id AND l.pos = stream_heads.pos
), 0);

CREATE TABLE stream_marks (
    user_id     TEXT NOT NULL,
    pos         INTEGER NOT NULL,
    id          INTEGER NOT NULL,
    PRIMARY KEY (user_id, pos)
) WITHOUT ROWID;
INSERT INTO stream_marks (user_id, pos, id)
SELECT user_id, pos, id FROM stream_log WHERE pos % 128 = 0;

DROP INDEX stream_log_by_user
"""
"""Version 13: a person's stream is a chain, each entry pointing at the one before it
(``prev``; the head at the last), with a mark every 128th position, not a per-person
index over the whole log: an update wrote into one index page per person it touched,
which on the embedded backend was the largest cost of storing state
(``backends.sqlite.stores.live``)."""

MIGRATIONS: tuple[str, ...] = (
    _V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12, _V13
)  # fmt: skip


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file up to the newest schema; safe to call from many processes at once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split on ';' (executescript() would COMMIT our transaction), keeping a trigger's
    body (``BEGIN …; END``) whole: the only ';' inside our DDL."""
    statements: list[str] = []
    for piece in (p.strip() for p in script.split(";")):
        last = statements[-1] if statements else ""
        if last.startswith("CREATE TRIGGER") and not last.endswith("END"):
            statements[-1] = f"{last}; {piece}"
        elif piece:
            statements.append(piece)
    return statements
