"""Every store test runs on the embedded SQLite stores and on PostgreSQL (with its Redis
queues): one contract, both implementations."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
