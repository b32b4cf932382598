"""Words for aggregated notifications: the values a template gets, and what Clarion says
when the type has no template.

A template sees ``actors`` (names, newest first), ``count`` (how many this text is about),
``others`` (``count`` less the newest: "Bob and 4,998 others"), ``total`` (everything on
the inbox entry) and ``also`` (exactly one new since the first went out), e.g.::

    {{ actors[0] }}{% if also %} also{% elif others %} and {{ others }} others{% endif %}
    liked your photo

Without one: the event's own title, and "Also Bob", "Bob and Carol" or "Bob, Carol and 47
others" as the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clarion.policy.aggregation import WindowSummary
from clarion.stores.records import Aggregate


def who(actors: Sequence[str], count: int) -> str:
    """ "Bob", "Bob and Carol", "Bob, Carol and 47 others" (never "and 0 others")."""
    names = [a for a in actors if a][: max(count, 0)]
    others = count - len(names)
    if not names:
        return f"{count:,} {'person' if count == 1 else 'people'}"
    if others <= 0:
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{', '.join(names)} and {others:,} {'other' if others == 1 else 'others'}"


def single(actor: str | None) -> dict[str, Any]:
    """The aggregate values of a notification that goes out alone."""
    actors = [actor] if actor else []
    return {"actors": actors, "count": 1, "others": 0, "total": 1, "also": False}


def of_summary(summary: WindowSummary) -> dict[str, Any]:
    return {
        "actors": list(summary.actors),
        "count": summary.count,
        "others": summary.count - 1,
        "total": summary.total,
        "also": summary.count == 1,
    }


def of_entry(aggregate: Aggregate) -> dict[str, Any]:
    return {
        "actors": list(aggregate.actors),
        "count": aggregate.count,
        "others": aggregate.count - 1,
        "total": aggregate.count,
        "also": False,
    }


def summary_body(summary: WindowSummary) -> str:
    if summary.count == 1 and summary.actors:
        return f"Also {summary.actors[0]}"
    return who(summary.actors, summary.count)


def entry_body(aggregate: Aggregate) -> str:
    return who(aggregate.actors, aggregate.count)
