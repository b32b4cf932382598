"""Every look-alike at once, on loopback: what ``clarion fake-providers`` runs and what the
tests start once per session.

* APNs and FCM speak HTTP/2 over TLS, each on its own port.
* Web Push endpoints, the FCM token endpoint, the Twilio API and the webhook receiver share
  one HTTP/1.1 app, served over TLS and (for status webhooks in tests) plain HTTP.
* SMTP is aiosmtpd with STARTTLS.

Certificates come from a throwaway CA whose file Clarion is told to trust (``ca_file``).
``clarion_config()`` is the provider configuration that points Clarion at all of them.
A control API (``/_control/…``) lets another process set failures and read what arrived.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from clarion.fakes.apns import FakeAPNs, new_signing_key
from clarion.fakes.behaviour import Behaviour, Recorder, Rule
from clarion.fakes.fcm import FakeFCM
from clarion.fakes.h2server import H2Server
from clarion.fakes.smtp import FakeSMTP
from clarion.fakes.tls import make_local_tls
from clarion.fakes.twilio import FakeTwilio
from clarion.fakes.webhook import FakeWebhookReceiver
from clarion.fakes.webpush import FakeWebPush, new_vapid_key

TEAM_ID = "TEAMFAKE01"
KEY_ID = "KEYFAKE001"
TOPIC = "com.example.clarion"


class FakeProviders:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tls = make_local_tls(folder / "tls")
        self.apns_private_key, public = new_signing_key()
        self.apns = FakeAPNs(team_id=TEAM_ID, key_id=KEY_ID, public_key=public, topic=TOPIC)
        self.apns_backup = FakeAPNs(team_id=TEAM_ID, key_id=KEY_ID, public_key=public, topic=TOPIC)
        """A second APNs endpoint, for failover (``secondary_apns_config``)."""
        self.fcm = FakeFCM()
        self.webpush = FakeWebPush()
        self.vapid_private_key, self.vapid_public_key = new_vapid_key()
        self.twilio = FakeTwilio("AC" + secrets.token_hex(16), secrets.token_urlsafe(24))
        self.webhooks = FakeWebhookReceiver()
        self.smtp = FakeSMTP(self.tls.server_context([]))
        self._servers: list[H2Server] = []
        self._runner: web.AppRunner | None = None
        self.ports: dict[str, int] = {}

    @property
    def all(self) -> dict[str, Any]:
        return {
            "apns": self.apns,
            "apns_backup": self.apns_backup,
            "fcm": self.fcm,
            "webpush": self.webpush,
            "sms_twilio": self.twilio,
            "webhook": self.webhooks,
            "smtp": self.smtp,
        }

    async def start(self) -> FakeProviders:
        h2 = self.tls.server_context(["h2"])
        for name, fake in (
            ("apns", self.apns),
            ("apns_backup", self.apns_backup),
            ("fcm", self.fcm),
        ):
            server = H2Server(fake.handle, ssl_context=h2)
            self.ports[name] = await server.start()
            self._servers.append(server)
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        from clarion.launch import free_port

        self.ports["https"], self.ports["http"] = free_port(), free_port()
        await web.TCPSite(
            self._runner,
            "127.0.0.1",
            self.ports["https"],
            ssl_context=self.tls.server_context(["http/1.1"]),
        ).start()
        await web.TCPSite(self._runner, "127.0.0.1", self.ports["http"]).start()
        https = f"https://127.0.0.1:{self.ports['https']}"
        self.fcm.token_uri = f"{https}/token"
        self.webpush.base_url = https
        self.webhooks.base_url = https
        self.ports["smtp"] = await asyncio.to_thread(self.smtp.start)
        return self

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.fcm.token)
        app.router.add_post("/push/{sub}", self.webpush.push)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.twilio.messages)
        app.router.add_post("/hooks/{name}", self.webhooks.receive)
        app.router.add_get("/_control/config", self._control_config)
        app.router.add_get("/_control/{fake}/received", self._control_received)
        app.router.add_delete("/_control/{fake}/received", self._control_clear)
        app.router.add_post("/_control/{fake}/rules", self._control_rule)
        app.router.add_delete("/_control/{fake}/rules", self._control_rules_clear)
        app.router.add_post("/_control/webpush/subscribe", self._control_subscribe)
        return app

    def plain_url(self, path: str) -> str:
        """The same app over plain HTTP (for receivers that do not need TLS)."""
        return f"http://127.0.0.1:{self.ports['http']}{path}"

    def secondary_apns_config(self) -> dict[str, Any]:
        """Clarion's configuration for the backup APNs look-alike, as the secondary."""
        primary = self.clarion_config()["apns"]
        backup = f"https://127.0.0.1:{self.ports['apns_backup']}"
        return primary | {"kind": "apns", "role": "secondary", "base_url": backup}

    def clarion_config(self) -> dict[str, dict[str, Any]]:
        """Provider configuration pointing Clarion at these look-alikes."""
        ca = str(self.tls.ca_file)
        return {
            "apns": {
                "base_url": f"https://127.0.0.1:{self.ports['apns']}",
                "team_id": TEAM_ID,
                "key_id": KEY_ID,
                "private_key": self.apns_private_key,
                "topic": TOPIC,
                "ca_file": ca,
            },
            "fcm": {
                "base_url": f"https://127.0.0.1:{self.ports['fcm']}",
                "service_account": json.dumps(self.fcm.service_account()),
                "ca_file": ca,
            },
            "webpush": {
                "vapid_private_key": self.vapid_private_key,
                "vapid_subject": "mailto:ops@example.com",
                "ca_file": ca,
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": self.ports["smtp"],
                "sender": "Clarion <no-reply@example.com>",
                "starttls": True,
                "ca_file": ca,
            },
            "sms_twilio": {
                "base_url": f"https://127.0.0.1:{self.ports['https']}",
                "account_sid": self.twilio.account_sid,
                "auth_token": self.twilio.auth_token,
                "sender": "+15550000000",
                "ca_file": ca,
            },
            "webhook": {"ca_file": ca},
        }

    def fake(self, name: str) -> Any:
        try:
            return self.all[name]
        except KeyError:
            raise web.HTTPNotFound(text=f"no look-alike {name!r}") from None

    async def _control_config(self, _: web.Request) -> web.Response:
        return web.json_response(self.clarion_config())

    async def _control_received(self, request: web.Request) -> web.Response:
        fake = self.fake(request.match_info["fake"])
        recorder: Recorder = fake.received
        if "count" in request.query:
            return web.json_response(
                {"count": len(recorder), "misbehaved": fake.behaviour.misbehaved}
            )
        return web.json_response(recorder.all(), dumps=_dumps)

    async def _control_clear(self, request: web.Request) -> web.Response:
        self.fake(request.match_info["fake"]).received.clear()
        return web.Response(status=204)

    async def _control_rule(self, request: web.Request) -> web.Response:
        behaviour: Behaviour = self.fake(request.match_info["fake"]).behaviour
        rule = Rule.from_json(await request.json())
        behaviour.add(rule)
        return web.json_response(
            {k: v for k, v in asdict(rule).items() if k != "_recent"}, dumps=_dumps
        )

    async def _control_rules_clear(self, request: web.Request) -> web.Response:
        self.fake(request.match_info["fake"]).behaviour.clear()
        return web.Response(status=204)

    async def _control_subscribe(self, _: web.Request) -> web.Response:
        return web.json_response(self.webpush.subscribe())

    def reset(self) -> None:
        for fake in self.all.values():
            fake.received.clear()
            fake.behaviour.clear()
        self.apns.forget_tokens()
        self.apns_backup.forget_tokens()
        self.fcm.revoke_tokens()
        self.twilio.callback_status = None

    async def stop(self) -> None:
        for server in self._servers:
            await server.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.to_thread(self.smtp.stop)


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value, default=str).decode()


class FakeProvidersThread:
    """The look-alikes on a loop of their own, so tests on any loop (or none) can use them."""

    def __init__(self, folder: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.suite = FakeProviders(folder)

    def start(self) -> FakeProviders:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.suite.start(), self.loop).result(30)
        return self.suite

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.suite.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
