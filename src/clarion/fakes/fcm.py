"""An FCM HTTP v1 look-alike: an OAuth2 token endpoint (JWT bearer grant, RS256) and the
messages:send API over HTTP/2, with FCM's error bodies."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clarion.fakes.behaviour import Behaviour, Recorder
from clarion.fakes.h2server import DropConnection, H2Request

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
"""google-auth signs for Google's token endpoint whatever token_uri says; Google accepts it."""


def fcm_error(
    code: int, status: str, error_code: str | None = None, message: str = ""
) -> dict[str, Any]:
    """FCM v1's error body (``errorCode`` rides in the FcmError detail)."""
    details = []
    if error_code is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        )
    return {
        "error": {"code": code, "message": message or status, "status": status, "details": details}
    }


class FakeFCM:
    def __init__(self, project_id: str = "clarion-fake") -> None:
        self.project_id = project_id
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self._public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.client_email = f"clarion@{project_id}.iam.gserviceaccount.com"
        self.token_uri = ""
        self.behaviour = Behaviour()
        self.received = Recorder()
        self.tokens_issued = 0
        self._access: dict[str, float] = {}

    def service_account(self) -> dict[str, Any]:
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "fake1",
            "private_key": self._private_pem,
            "client_email": self.client_email,
            "client_id": "1",
            "token_uri": self.token_uri,
        }

    def revoke_tokens(self) -> None:
        self._access.clear()

    async def token(self, request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        assertion = form.get("assertion", [""])[0]
        if form.get("grant_type", [""])[0] != GRANT:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                assertion,
                self._public_pem,
                algorithms=["RS256"],
                audience=[self.token_uri, GOOGLE_TOKEN_AUDIENCE],
            )
        except jwt.PyJWTError as exc:
            return web.json_response(
                {"error": "invalid_grant", "error_description": str(exc)}, status=400
            )
        if claims.get("iss") != self.client_email or "firebase.messaging" not in claims.get(
            "scope", ""
        ):
            return web.json_response({"error": "invalid_scope"}, status=400)
        access = "ya29." + secrets.token_urlsafe(24)
        self._access[access] = time.time() + 3600
        self.tokens_issued += 1
        return web.json_response(
            {"access_token": access, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def handle(self, request: H2Request) -> tuple[int, dict[str, str], bytes]:
        expected = f"/v1/projects/{self.project_id}/messages:send"
        if request.method != "POST" or request.path != expected:
            return 404, {}, orjson.dumps(fcm_error(404, "NOT_FOUND"))
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self._access.get(bearer, 0) < time.time():
            return 401, {}, orjson.dumps(fcm_error(401, "UNAUTHENTICATED"))
        message = orjson.loads(request.body)["message"]
        rule = self.behaviour.decide(message.get("token", ""))
        if rule is not None:
            await asyncio.sleep(rule.latency_s)
            if rule.drop:
                raise DropConnection
            if rule.status != 200:
                headers = {}
                if rule.retry_after_s is not None:
                    headers["retry-after"] = str(int(rule.retry_after_s))
                body = rule.body or fcm_error(rule.status, "INTERNAL", "INTERNAL")
                return rule.status, headers, orjson.dumps(body)
        self.received.add({"message": message, "headers": dict(request.headers)})
        name = f"projects/{self.project_id}/messages/{secrets.token_hex(8)}"
        return 200, {"content-type": "application/json"}, orjson.dumps({"name": name})
