"""Which provider serves a kind: the providers file, overlaid by what the API stored,
re-read on every use, with a broken entry skipped rather than stopping the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarion.backends.sqlite import SqliteDatabase
from clarion.backends.sqlite.stores.config import SqliteProviderStore, SqliteProviderTokenStore
from clarion.channels.config import ProviderDeps
from clarion.channels.providers import ProviderSet, read_file
from clarion.clock import SystemClock
from clarion.errors import ConfigError

SMS = {"account_sid": "AC" + "0" * 32, "auth_token": "secret", "sender": "+15550000000"}


@pytest.fixture
def store(tokens_db: SqliteDatabase) -> SqliteProviderStore:
    return SqliteProviderStore(tokens_db)


def providers(store: SqliteProviderStore, db: SqliteDatabase, **kw: object) -> ProviderSet:
    deps = ProviderDeps(SystemClock(), SqliteProviderTokenStore(db))
    return ProviderSet(store, deps, **kw)  # type: ignore[arg-type]


async def _sender(chosen: ProviderSet) -> str:
    sender: str = (await chosen.configs())["sms_twilio"].model_dump()["sender"]
    return sender


def test_the_providers_file_is_toml_or_json_and_must_be_tables(tmp_path: Path) -> None:
    toml = tmp_path / "providers.toml"
    toml.write_text('[smtp]\nhost = "mail.example.com"\nsender = "a@example.com"\n')
    assert read_file(toml) == {"smtp": {"host": "mail.example.com", "sender": "a@example.com"}}
    flat = tmp_path / "providers.json"
    flat.write_text('{"smtp": "mail.example.com"}')
    with pytest.raises(ConfigError, match="one table"):
        read_file(flat)
    with pytest.raises(ConfigError, match="cannot read"):
        read_file(tmp_path / "missing.toml")
    assert read_file(None) == {}


async def test_stored_configs_overlay_the_file_and_changes_are_picked_up(
    store: SqliteProviderStore, tokens_db: SqliteDatabase
) -> None:
    file_docs = {"sms_twilio": SMS | {"sender": "+15551111111"}}
    chosen = providers(store, tokens_db, file_docs=file_docs)
    first = await chosen.choose("sms_twilio")
    assert first is not None
    assert await _sender(chosen) == "+15551111111"
    assert await chosen.choose("sms_twilio") is first  # unchanged: the same connections
    await store.put("sms_twilio", SMS, 0.0)
    assert await _sender(chosen) == "+15550000000"  # read-your-writes: the very next use
    assert await chosen.choose("sms_twilio") is not first  # rebuilt with the new config
    await chosen.close()


async def test_a_secondary_is_only_chosen_as_the_secondary(
    store: SqliteProviderStore, tokens_db: SqliteDatabase
) -> None:
    await store.put("twilio_backup", SMS | {"kind": "sms_twilio", "role": "secondary"}, 0.0)
    chosen = providers(store, tokens_db)
    assert await chosen.choose("sms_twilio") is None
    backup = await chosen.choose("sms_twilio", role="secondary")
    assert backup is not None
    assert backup.name == "twilio_backup"
    await chosen.close()


async def test_a_broken_entry_is_skipped_and_a_removed_one_is_closed(
    store: SqliteProviderStore, tokens_db: SqliteDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    await store.put("smtp", {"host": "mail.example.com"}, 0.0)  # no sender
    await store.put("sms_twilio", SMS, 0.0)
    chosen = providers(store, tokens_db)
    assert set(await chosen.configs()) == {"sms_twilio", "webhook"}
    assert "provider smtp: configuration refused" in caplog.text
    assert await chosen.choose("sms_twilio") is not None
    await store.delete("sms_twilio")
    assert await chosen.choose("sms_twilio") is None
    await chosen.close()


async def test_the_webhook_sender_needs_no_configuration_unless_one_is_configured(
    store: SqliteProviderStore, tokens_db: SqliteDatabase
) -> None:
    chosen = providers(store, tokens_db)
    built_in = await chosen.choose("webhook")
    assert built_in is not None
    assert built_in.name == "webhook"
    await store.put("hooks", {"kind": "webhook", "timeout_s": 3.0}, 0.0)
    configured = await chosen.choose("webhook")
    assert configured is not None
    assert configured.name == "hooks"
    assert set(await chosen.configs()) == {"hooks"}
    await chosen.close()
