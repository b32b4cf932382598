"""The live stream of a person's devices: ``GET /v1/me/stream`` (Server-Sent Events) and
``/v1/me/ws`` (WebSocket) carry the same messages to every open connection of the person.

A connection authenticates with its user token (``Authorization``; a WebSocket may send it
as its first message) or a single-use ticket in the URL (EventSource cannot send headers).
It resumes from ``Last-Event-ID`` (SSE) or ``since`` (either): what it missed is replayed
from the person's log, or it is told to ``reset`` and refetch. Its first message, ``ready``,
says where it stands. A comment line every 15 s keeps proxies from cutting an idle
stream; a device too slow to read is cut off with a reason (``live.hub``).

Over WebSocket a device also sends: ``{"type": "ack", "position": "e:p"}`` (it has
everything up to there: critical state waits for this) and ``{"type": "state", "key",
"value", "version"}`` (its own update, heard by the person's other devices, not itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from clarion.api.chunks import ChunkWriter
from clarion.api.ingest import RAW_SEND
from clarion.api.services import ApiServices
from clarion.errors import ClarionError, InputError, UnauthenticatedError
from clarion.live import tokens
from clarion.live.hub import Connection
from clarion.live.log import parse_position
from clarion.live.state import state_post
from clarion.types import UserId

log = logging.getLogger(__name__)
router = APIRouter(tags=["me"])

_FIRST_MESSAGE_S = 10.0
_PING = b": ping\n\n"
"""A comment line: what a quiet stream gets every 15 s, so proxies keep it open."""


@router.get(
    "/v1/me/stream",
    summary="My live stream (Server-Sent Events): inbox, read, state, reset",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def sse(
    request: Request,
    ticket: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    device_id: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    svc: ApiServices = request.app.state.services
    user = await _user(svc, request.headers.get("authorization"), ticket)
    resume = request.headers.get("last-event-id") or since
    conn = await _open(svc, user, device_id, resume)

    return EventStream(svc, conn)


class EventStream(Response):
    """A connection's messages as ``text/event-stream``.

    While the socket keeps up, the hub writes each message itself (``_Direct``). Otherwise
    messages queue and this writer sends them, what queued up meanwhile in the same write
    (one chunk, one syscall), straight to the server (the ``send`` ``api.ingest.IngestFront``
    was given), not through the middleware: those only look at a response's start. It
    also writes heartbeats and the reason a connection was closed. The device hanging up
    ends it."""

    def __init__(self, svc: ApiServices, conn: Connection) -> None:
        self._svc, self._conn = svc, conn
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self._conn
        watch = asyncio.create_task(_until_gone(receive, conn))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            write = scope.get(RAW_SEND, send)
            chunks = ChunkWriter.of(write)
            direct = None if chunks is None else _Direct(chunks, conn)
            conn.sink = direct
            while True:
                waiting = await conn.take()
                if direct is not None:
                    direct.holding = True
                closing = bool(waiting) and waiting[-1] is None
                chunk = b"".join(_sse(m) for m in waiting if m is not None)
                if closing:
                    chunk += _event("error", {"reason": conn.closed or "closed"})
                    await write({"type": "http.response.body", "body": chunk})
                    return
                await write(
                    {"type": "http.response.body", "body": chunk or _PING, "more_body": True}
                )
                if direct is not None:
                    direct.holding = False
        finally:
            conn.sink = None
            watch.cancel()
            self._svc.hub.disconnect(conn)


class _Direct:
    """A connection's sink: each message written at once, unless the socket is not keeping
    up or the writer holds messages it has not written yet (this one would overtake them)."""

    def __init__(self, chunks: ChunkWriter, conn: Connection) -> None:
        self._chunks = chunks
        self._conn = conn
        self.holding = False

    def __call__(self, message: dict[str, Any]) -> bool:
        if self.holding or not self._chunks.writable():
            return False
        self._chunks.write(_sse(message))
        self._conn.wrote_at = time.monotonic()
        return True


async def _until_gone(receive: Receive, conn: Connection) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    conn.close("the device hung up")


def _event(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _sse(message: dict[str, Any]) -> bytes:
    head = f"id: {message['id']}\nevent: {message['type']}\ndata: ".encode()
    return head + orjson.dumps(message["data"]) + b"\n\n"


@router.websocket("/v1/me/ws")
async def ws(websocket: WebSocket) -> None:
    svc: ApiServices = websocket.app.state.services
    await websocket.accept()
    try:
        user, resume = await _ws_hello(svc, websocket)
        conn = await _open(svc, user, websocket.query_params.get("device_id"), resume)
    except ClarionError as exc:
        await websocket.close(code=4401, reason=str(exc)[:120])
        return
    sender = asyncio.create_task(_ws_send(websocket, conn))
    try:
        while True:
            await _from_device(svc, conn, await websocket.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        svc.hub.disconnect(conn)


async def _ws_hello(svc: ApiServices, websocket: WebSocket) -> tuple[UserId, str | None]:
    """Who this is and where to resume: from the URL and headers, or a first message
    ``{"type": "auth", "token": …, "since": …}`` (browsers cannot send headers here)."""
    params = websocket.query_params
    header = websocket.headers.get("authorization")
    if header is None and params.get("ticket") is None:
        try:
            first = await asyncio.wait_for(websocket.receive_text(), _FIRST_MESSAGE_S)
            hello = orjson.loads(first)
        except (TimeoutError, orjson.JSONDecodeError):
            raise UnauthenticatedError('send {"type": "auth", "token": …} first') from None
        if not isinstance(hello, dict) or not isinstance(hello.get("token"), str):
            raise UnauthenticatedError('send {"type": "auth", "token": …} first')
        return await svc.user_of(hello["token"]), hello.get("since") or params.get("since")
    return await _user(svc, header, params.get("ticket")), params.get("since")


async def _ws_send(websocket: WebSocket, conn: Connection) -> None:
    while True:
        waiting = await conn.take()
        if not waiting:
            await websocket.send_text('{"type":"ping"}')
        for message in waiting:
            if message is None:
                await websocket.close(code=4008, reason=(conn.closed or "closed")[:120])
                return
            await websocket.send_bytes(orjson.dumps(message))


async def _from_device(svc: ApiServices, conn: Connection, text: str) -> None:
    try:
        message = orjson.loads(text)
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ack":
            position = parse_position(message.get("position"))
            if position is not None and conn.device_id is not None:
                now = svc.runtime.clock.now()
                await svc.runtime.stores.states.ack(conn.user_id, conn.device_id, *position, now)
        elif kind == "state":
            key, version = message["key"], int(message["version"])
            post = state_post(conn.user_id, str(key), message["value"], version, origin=conn.id)
            await svc.put_states([post])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        conn.give(
            {"id": f"{conn.epoch}:{conn.pos}", "type": "error", "data": {"reason": "bad message"}}
        )


async def _user(svc: ApiServices, authorization: str | None, ticket: str | None) -> UserId:
    if ticket is not None:
        user = await svc.runtime.stores.tickets.redeem(
            tokens.ticket_hash(ticket), svc.runtime.clock.now()
        )
        if user is None:
            raise UnauthenticatedError("the stream ticket is unknown, used or expired")
        return user
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthenticatedError(
            "send a user token ('Authorization: Bearer …') or a ticket from"
            " POST /v1/me/stream-tickets"
        )
    return await svc.user_of(token.strip())


async def _open(
    svc: ApiServices, user: UserId, device_id: str | None, resume: str | None
) -> Connection:
    """Register a connection, caught up from ``resume`` (or starting at the head)."""
    since = parse_position(resume)
    if resume and since is None:
        raise InputError.single("since", "the id of a stream message, as epoch:position")
    await svc.activate(user)
    conn = Connection(user, device_id, "", 0)
    async with conn.busy:  # what arrives meanwhile waits, then continues from here
        svc.hub.connect(conn)
        replay = await svc.runtime.stores.streams.replay(user, since)
        conn.epoch, conn.pos = replay.head.epoch, replay.head.pos
        ready = {"id": f"{conn.epoch}:{conn.pos}", "type": "ready", "data": {}}
        if since is not None and replay.reset is None:
            conn.epoch, conn.pos = since
            ready["id"] = f"{conn.epoch}:{conn.pos}"
        conn.give(ready)
        if replay.reset is not None:
            conn.give({"id": ready["id"], "type": "reset", "data": {"reason": replay.reset}})
        elif replay.entries:
            await svc.hub.send(conn, replay.entries)
    return conn
