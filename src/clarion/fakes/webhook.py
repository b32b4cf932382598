"""A webhook receiver: records what arrives and checks Standard Webhooks signatures."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from clarion.channels import signing
from clarion.fakes.behaviour import Behaviour, Recorder


class FakeWebhookReceiver:
    def __init__(self) -> None:
        self.base_url = ""
        self.behaviour = Behaviour()
        self.received = Recorder()
        self.secrets: dict[str, str] = {}
        """Receiver name → the secret it verifies with."""

    def url(self, name: str) -> str:
        return f"{self.base_url}/hooks/{name}"

    async def receive(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        secret = self.secrets.get(name)
        genuine = secret is not None and signing.verify(secret, headers, body, now=time.time())
        rule = self.behaviour.decide(name)
        if rule is not None:
            await asyncio.sleep(rule.latency_s)
            if rule.status >= 300 or rule.status < 200:
                self.received.add({"name": name, "refused": rule.status, "headers": headers})
                return web.Response(status=rule.status)
        self.received.add(
            {"name": name, "body": orjson.loads(body), "headers": headers, "genuine": genuine}
        )
        return web.Response(status=204)
