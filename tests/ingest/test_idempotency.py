from typing import Any

from clarion.ingest.idempotency import idempotency_key


def key(explicit: str | None = None, **about: Any) -> str:
    fields: dict[str, Any] = {
        "type": "like",
        "actor": "a",
        "target": "b",
        "object": "photo_1",
        "payload": {"position_s": 60, "episode": 3},
    }
    return idempotency_key("svc", explicit=explicit, about=fields | about)


def test_computed_key_is_stable_and_depends_on_what_the_event_is_about() -> None:
    assert key() == key()
    assert key() != key(object="photo_2")
    assert key() != key(actor="c")
    assert key() != key(type="comment")


def test_computed_key_covers_the_payload_and_the_collapse_key() -> None:
    assert key() != key(payload={"position_s": 120, "episode": 3})
    assert key() != key(collapse_key="show_42")
    assert key() == key(payload={"episode": 3, "position_s": 60})  # canonical JSON


def test_keys_are_namespaced_by_sender() -> None:
    assert idempotency_key("one", explicit="k", about={}) != idempotency_key(
        "two", explicit="k", about={}
    )


def test_explicit_key_ignores_content() -> None:
    assert key(explicit="order-7") == key(explicit="order-7", object="other")
