"""A Twilio Messages API look-alike: basic auth, form posts, error codes, and signed status
callbacks sent back to the URL the message named."""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any

import aiohttp
from aiohttp import web

from clarion.channels.sms_twilio import callback_signature, segments
from clarion.fakes.behaviour import Behaviour, Recorder


class FakeTwilio:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.behaviour = Behaviour()
        self.received = Recorder()
        self.callback_status: str | None = None
        """When set ("delivered", "undelivered"), every accepted message gets that callback."""
        self.callback_ca_file: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def messages(self, request: web.Request) -> web.Response:
        if request.match_info["sid"] != self.account_sid:
            return web.json_response({"code": 20404, "message": "not found"}, status=404)
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            login, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            login = password = ""
        if scheme != "Basic" or (login, password) != (self.account_sid, self.auth_token):
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        form = {k: str(v) for k, v in (await request.post()).items()}
        rule = self.behaviour.decide(form.get("To", ""))
        if rule is not None:
            await asyncio.sleep(rule.latency_s)
            if rule.status not in (200, 201):
                headers = {}
                if rule.retry_after_s is not None:
                    headers["Retry-After"] = str(int(rule.retry_after_s))
                body = rule.body or {"code": 20500, "message": "Internal error"}
                return web.json_response(body, status=rule.status, headers=headers)
        sid = "SM" + secrets.token_hex(16)
        parts = segments(form.get("Body", ""))
        self.received.add(
            {"sid": sid, "form": form, "segments": parts.count, "encoding": parts.encoding}
        )
        if self.callback_status and form.get("StatusCallback"):
            task = asyncio.create_task(self._callback(form["StatusCallback"], sid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(
            {"sid": sid, "status": "queued", "num_segments": str(parts.count)}, status=201
        )

    async def _callback(self, url: str, sid: str) -> None:
        assert self.callback_status is not None
        params: dict[str, Any] = {
            "MessageSid": sid,
            "MessageStatus": self.callback_status,
            "AccountSid": self.account_sid,
        }
        signature = callback_signature(self.auth_token, url, params)
        await asyncio.sleep(0.05)
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as answer,
        ):
            await answer.read()  # the connection goes back before the session closes
