import pytest

from clarion.errors import FieldProblem, ForbiddenError, InputError
from clarion.ingest.validation import EventRequest, Limits, build_event
from clarion.models import Channel, FanOut, Priority, SenderKey, TypeSpec

LIMITS = Limits(max_payload_bytes=200, max_direct_recipients=3, idempotency_window_s=3600)
LIKE = TypeSpec("like", Priority.P1, (Channel.IN_APP,), ttl_seconds=600)
KEY = SenderKey(key_id="k1", sender="likes")


def build(request: EventRequest, spec: TypeSpec | None = LIKE, key: SenderKey = KEY):
    return build_event(request, spec, key, limits=LIMITS, now=1000.0)


def fields(exc: pytest.ExceptionInfo[InputError]) -> set[str]:
    return {p.field for p in exc.value.problems}


def test_build_event_fills_defaults_from_the_type() -> None:
    event = build(EventRequest(type="like", actor="a", target="b", object="photo_1"))
    assert event.priority is Priority.P1
    assert event.channels == (Channel.IN_APP,)
    assert event.expires_at == 1600.0
    assert event.direct_recipients == ("b",)
    assert event.title == "Like"
    assert event.body == "From a · photo_1"
    assert event.event_id.startswith("evt_")
    assert event.idempotency_key.startswith("likes:")


def test_build_event_takes_title_and_body_from_the_payload() -> None:
    event = build(EventRequest(type="like", target="b", payload={"title": "Hi", "body": "There"}))
    assert (event.title, event.body) == ("Hi", "There")


def test_build_event_deduplicates_recipients_keeping_order() -> None:
    event = build(EventRequest(type="like", recipients=("x", "y", "x")))
    assert event.recipients == ("x", "y")


def test_build_event_lists_every_problem_at_once() -> None:
    with pytest.raises(InputError) as exc:
        build(
            EventRequest(
                type="like",
                target="b",
                recipients=("c",),
                payload={"blob": "x" * 500},
                priority=Priority.P0,
                ttl_seconds=0,
            )
        )
    assert fields(exc) == {"recipients", "payload", "priority", "ttl_seconds"}


def test_build_event_refuses_unknown_types_with_the_other_problems() -> None:
    with pytest.raises(InputError) as exc:
        build(EventRequest(type="nope", payload={"blob": "x" * 500}), spec=None)
    assert fields(exc) == {"type", "target", "payload"}  # unknown type reported with the rest


def test_build_event_refuses_types_the_key_may_not_send() -> None:
    with pytest.raises(ForbiddenError):
        build(EventRequest(type="like", target="b"), key=SenderKey("k", "s", frozenset({"otp"})))


def test_build_event_allows_lowering_priority() -> None:
    assert build(EventRequest(type="like", target="b", priority=Priority.P2)).priority is (
        Priority.P2
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (EventRequest(type="like", fan_out=FanOut.FOLLOWERS), "actor"),
        (EventRequest(type="like", fan_out=FanOut.FOLLOWERS, actor="a", target="b"), "target"),
        (EventRequest(type="like", fan_out=FanOut.SEGMENT), "fan_out"),
        (EventRequest(type="like", fan_out=FanOut.BROADCAST), "fan_out"),
        (EventRequest(type="like"), "target"),
        (EventRequest(type="like", recipients=()), "recipients"),
        (EventRequest(type="like", recipients=("a", "b", "c", "d")), "recipients"),
    ],
)
def test_build_event_audience_rules(request_: EventRequest, field: str) -> None:
    with pytest.raises(InputError) as exc:
        build(request_)
    assert field in fields(exc)


def test_build_event_answers_earlier_problems_with_its_own_and_skips_their_fields() -> None:
    earlier = [FieldProblem("type", "required"), FieldProblem("payload.x", "not JSON")]
    with pytest.raises(InputError) as exc:
        build_event(EventRequest(type=""), None, KEY, limits=LIMITS, now=0, earlier=earlier)
    assert exc.value.problems == (*earlier, FieldProblem("target", exc.value.problems[2].reason))
    assert fields(exc) == {"type", "payload.x", "target"}


def test_event_ids_sort_by_creation_time() -> None:
    from clarion.ids import new_event_id

    ids = [new_event_id(ms) for ms in (1, 2, 1_000, 2**40, 2**47)]
    assert ids == sorted(ids)
    assert len({new_event_id(5) for _ in range(1000)}) == 1000
    assert all(len(i) == 36 for i in ids)
