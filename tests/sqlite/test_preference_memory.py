"""The embedded preference store remembers what it read and forgets whatever the change log
names: a process never evaluates with a document another process has since changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores import preferences as module
from clarion.backends.sqlite.stores.preferences import SqlitePreferenceStore
from clarion.types import UserId

ANN, BOB = UserId("ann"), UserId("bob")


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[SqliteDatabase, SqliteDatabase]]:
    """Two connections to one file, as an evaluating worker and the API process have."""
    worker, api = SqliteDatabase(tmp_path / "clarion.db"), SqliteDatabase(tmp_path / "clarion.db")
    yield worker, api
    worker.close()
    api.close()


async def docs(store: SqlitePreferenceStore, *users: UserId) -> dict[UserId, object]:
    groups = await store.documents(list(users))
    return {u: orjson.loads(raw) for raw, people in groups.items() for u in people}


async def test_a_change_made_by_another_process_is_seen_by_the_next_lookup(
    two: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    worker, api = (SqlitePreferenceStore(db) for db in two)
    await api.put(BOB, {"enabled": True}, 1.0, "bob")
    assert await docs(worker, ANN, BOB) == {BOB: {"enabled": True}}  # both remembered now
    await api.put(ANN, {"enabled": False}, 2.0, "ann")  # ann had no document
    await api.put(BOB, {"enabled": False}, 2.0, "bob")
    assert await docs(worker, ANN, BOB) == {ANN: {"enabled": False}, BOB: {"enabled": False}}
    (record,) = (await worker.load_many([BOB])).values()
    assert record.version == 2


async def test_what_is_remembered_is_served_without_reading_the_documents(
    two: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    worker_db, api_db = two
    worker, api = SqlitePreferenceStore(worker_db), SqlitePreferenceStore(api_db)
    await api.put(ANN, {"enabled": False}, 1.0, "ann")
    assert await docs(worker, ANN) == {ANN: {"enabled": False}}
    # Drop the trigger, so this write leaves no trace in the log: the remembered document
    # is what the worker answers with, which shows the memory is used.
    await api_db.write(lambda c: c.execute("DROP TRIGGER preferences_updated"))
    await api_db.write(lambda c: c.execute("UPDATE preferences SET doc = '{}'"))
    assert await docs(worker, ANN) == {ANN: {"enabled": False}}
    assert await docs(SqlitePreferenceStore(worker_db), ANN) == {ANN: {}}  # a fresh reader


async def test_writes_behind_the_store_and_deletes_are_in_the_log(
    two: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    worker_db, api_db = two
    worker = SqlitePreferenceStore(worker_db)
    await SqlitePreferenceStore(api_db).put(ANN, {"enabled": False}, 1.0, "ann")
    assert await docs(worker, ANN, BOB) == {ANN: {"enabled": False}}
    await api_db.write(
        lambda c: c.execute(
            "INSERT INTO preferences (user_id, doc, version, updated_at)"
            " VALUES ('bob', '{\"enabled\": false}', 1, 1.0)"
        )
    )
    await api_db.write(lambda c: c.execute("DELETE FROM preferences WHERE user_id = 'ann'"))
    assert await docs(worker, ANN, BOB) == {BOB: {"enabled": False}}


async def test_a_reader_behind_a_pruned_log_or_many_changes_starts_afresh(
    two: tuple[SqliteDatabase, SqliteDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "_CHANGES_KEPT", 2)
    monkeypatch.setattr(module, "_CATCH_UP", 3)
    worker, api = (SqlitePreferenceStore(db) for db in two)
    people = [UserId(f"p{i}") for i in range(6)]
    assert await docs(worker, *people) == {}
    await api.put(people[0], {"n": 0}, 1.0, "x")
    await api.put(people[1], {"n": 1}, 1.0, "x")
    await api.put(people[2], {"n": 2}, 1.0, "x")  # the log now starts after the first change
    assert await docs(worker, *people) == {p: {"n": i} for i, p in enumerate(people[:3])}
    for i, person in enumerate(people):  # more changes than a catch-up reads
        await api.put(person, {"n": 10 + i}, 2.0, "x")
    assert await docs(worker, *people) == {p: {"n": 10 + i} for i, p in enumerate(people)}


async def test_a_full_memory_starts_afresh_and_answers_the_same(
    two: tuple[SqliteDatabase, SqliteDatabase],
) -> None:
    worker_db, api_db = two
    worker = SqlitePreferenceStore(worker_db, remembered=3)
    api = SqlitePreferenceStore(api_db)
    people = [UserId(f"p{i}") for i in range(7)]
    for i in (0, 1, 2, 5):
        await api.put(people[i], {"n": i}, 1.0, "x")
    expected = {people[i]: {"n": i} for i in (0, 1, 2, 5)}
    # A fan-out to more new people than the memory holds is answered, not remembered: it
    # would only push out the people who come back.
    assert await docs(worker, *people[:5]) == {people[i]: {"n": i} for i in (0, 1, 2)}
    assert not worker._docs.keys() | worker._absent
    assert await docs(worker, *people[5:]) == {people[5]: {"n": 5}}
    assert worker._docs.keys() | worker._absent == set(people[5:])
    # Five more people overflow it: it starts afresh, and reads the remembered two again
    # rather than answering as if they had no document.
    assert await docs(worker, *people) == expected
    assert await docs(worker, *people[5:]) == {people[5]: {"n": 5}}
