from clarion.ingest.idempotency import idempotency_key


def key(**kw: object) -> str:
    args: dict[str, object] = {
        "explicit": None,
        "type_name": "like",
        "actor": "a",
        "target": "b",
        "recipients": (),
        "object_id": "photo_1",
    }
    args.update(kw)
    return idempotency_key("svc", **args)  # type: ignore[arg-type]


def test_computed_key_is_stable_and_depends_on_what_the_event_is_about() -> None:
    assert key() == key()
    assert key() != key(object_id="photo_2")
    assert key() != key(actor="c")
    assert key() != key(type_name="comment")


def test_recipient_lists_are_order_insensitive() -> None:
    a = key(target=None, recipients=("x", "y"))
    assert a == key(target=None, recipients=("y", "x"))
    assert a != key(target=None, recipients=("x", "z"))


def test_keys_are_namespaced_by_sender() -> None:
    assert idempotency_key(
        "one", explicit="k", type_name="t", actor=None, target=None, recipients=(), object_id=None
    ) != idempotency_key(
        "two", explicit="k", type_name="t", actor=None, target=None, recipients=(), object_id=None
    )


def test_explicit_key_ignores_content() -> None:
    assert key(explicit="order-7") == key(explicit="order-7", object_id="other")
