"""The ASGI application: ``create_app(runtime)`` for tests and embedding,
``app_from_env()`` as the factory uvicorn starts in each server process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from clarion import __version__, collector, logs
from clarion.api.errors import install_error_handlers
from clarion.api.ingest import IngestFront
from clarion.api.openapi import install_openapi
from clarion.api.routes import (
    audiences,
    campaigns,
    devices,
    followers,
    killswitches,
    me,
    monitoring,
    notifications,
    operations,
    preferences,
    providers,
    schedules,
    state,
    stream,
    templates,
    types,
    unsubscribe,
    users,
    webhooks,
)
from clarion.api.services import ApiServices
from clarion.config import Settings
from clarion.runtime import Runtime, open_runtime
from clarion.web import routes as pages
from clarion.web.security import PageHeaders

DESCRIPTION = """
Clarion accepts events from producers, works out who should hear about each one, applies
their preferences and delivers it. Authenticate with `Authorization: Bearer <key>`; create
keys with `clarion keys create`.
"""


def create_app(runtime: Runtime | None = None, settings: Settings | None = None) -> IngestFront:
    """The ASGI app, bound to ``runtime`` or owning one built from ``settings`` (or the
    environment): the ingest fast lane in front of the FastAPI app that serves the rest."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime is None
        active = runtime or open_runtime(
            settings or Settings.from_env(), durable_commits=True, urgent=True
        )
        services = ApiServices(active)
        services.start()
        app.state.services = services
        if own:  # a server process of its own (not a test's app sharing the runner's)
            collector.settle()
        try:
            yield
        finally:
            await services.stop()
            if own:
                await active.close()

    app = FastAPI(
        title="Clarion",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app)
    modules = (
        notifications,
        types,
        users,
        preferences,
        devices,
        followers,
        templates,
        providers,
        webhooks,
        killswitches,
        unsubscribe,
        operations,
        me,
        stream,
        state,
        monitoring,
        schedules,
        audiences,
        campaigns,
    )
    for module in modules:
        app.include_router(module.router)
    app.include_router(pages.router)
    app.mount("/ui/static", pages.static_files(), name="static")
    app.add_middleware(PageHeaders)

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return IngestFront(app)


def app_from_env() -> IngestFront:
    """The factory ``clarion serve`` hands uvicorn (also in each API process it starts)."""
    logs.from_env()
    return create_app()
