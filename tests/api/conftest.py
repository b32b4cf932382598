"""Every API test module runs on the embedded backend and on Redis + PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
