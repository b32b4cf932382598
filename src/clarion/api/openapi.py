"""The OpenAPI document: FastAPI's, plus the endpoints served ahead of it by ``api.ingest``
(the two ingest endpoints and ``POST /v1/state``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from clarion.api.ingest import BATCH_PATH, SEND_PATH
from clarion.api.live_schemas import StateBatchIn, StateBatchOut
from clarion.api.routes.state import STATE_BATCH_PATH
from clarion.api.schemas import (
    BatchIn,
    BatchOut,
    ErrorOut,
    EventAccepted,
    EventIn,
    FollowersIn,
    PreferencesIn,
)

_REF = "#/components/schemas/{model}"
_DOCUMENTED_BY_HAND = (
    EventIn,
    BatchIn,
    EventAccepted,
    BatchOut,
    ErrorOut,
    PreferencesIn,
    FollowersIn,
    StateBatchIn,
    StateBatchOut,
)
"""Models that bodies documented outside FastAPI's signatures refer to (the ingest
endpoints, PATCH preferences, the streamed follower lists): their schemas are added to the
document's components, so every ``$ref`` resolves."""


def schema_ref(name: str) -> dict[str, str]:
    """A reference to a model in the document's components (see ``_DOCUMENTED_BY_HAND``)."""
    return {"$ref": _REF.format(model=name)}


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema_ref(name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Invalid fields, each listed",
        401: "Missing or unknown key",
        403: "This key may not send that type",
        429: "Over the sender's rate; see Retry-After",
        503: "The store is unavailable; retry",
    }
    return {str(c): {"description": reasons[c]} | _ref("ErrorOut") for c in codes}


def _operations() -> dict[str, Any]:
    security: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
    return {
        SEND_PATH: {
            "post": {
                "tags": ["notifications"],
                "summary": "Send one event",
                "operationId": "send_event",
                "security": security,
                "requestBody": {"required": True} | _ref("EventIn"),
                "responses": {
                    "202": {"description": "Accepted and durably enqueued"} | _ref("EventAccepted"),
                    "200": {"description": "A repeat of an idempotency key: the original event"}
                    | _ref("EventAccepted"),
                }
                | _errors(400, 401, 403, 429, 503),
            }
        },
        BATCH_PATH: {
            "post": {
                "tags": ["notifications"],
                "summary": "Send up to 1,000 events, each answered on its own",
                "operationId": "send_batch",
                "security": security,
                "requestBody": {"required": True} | _ref("BatchIn"),
                "responses": {
                    "200": {"description": "One result per event, in order"} | _ref("BatchOut")
                }
                | _errors(400, 401, 429, 503),
            }
        },
        STATE_BATCH_PATH: {
            "post": {
                "tags": ["state"],
                "summary": "Set up to 1,000 pieces of state at once (playback positions, …)",
                "operationId": "put_states",
                "security": security,
                "requestBody": {"required": True} | _ref("StateBatchIn"),
                "responses": {
                    "200": {"description": "How many were newer than what was stored"}
                    | _ref("StateBatchOut")
                }
                | _errors(400, 401, 503),
            }
        },
    }


def install_openapi(api: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title,
                version=api.version,
                description=api.description,
                routes=api.routes,
            )
            _, definitions = models_json_schema(
                [(m, "validation") for m in _DOCUMENTED_BY_HAND],
                ref_template=_REF,
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(definitions.get("$defs", {}))
            for path, operations in _operations().items():
                schema["paths"].setdefault(path, {}).update(operations)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
