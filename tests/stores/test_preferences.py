"""The preference document's compare-and-set: read-modify-write callers never lose a change."""

from __future__ import annotations

import pytest

from clarion.errors import StaleVersionError
from clarion.runtime import Runtime
from clarion.types import UserId

ANN = UserId("ann")


async def test_a_stale_version_is_refused_and_changes_nothing(runtime: Runtime) -> None:
    store = runtime.stores.preferences
    first = await store.put(ANN, {"enabled": True}, 1.0, "a", expected_version=0)
    assert first.version == 1
    with pytest.raises(StaleVersionError):
        await store.put(ANN, {"enabled": False}, 2.0, "b", expected_version=0)
    second = await store.put(ANN, {"types": {}}, 3.0, "c", expected_version=1)
    assert second.version == 2
    current = await store.get(ANN)
    assert current is not None
    assert (current.doc, current.version) == ({"types": {}}, 2)
    assert [entry.actor for entry in await store.history(ANN, limit=10)] == ["c", "a"]
