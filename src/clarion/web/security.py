"""Headers every page carries: a Content-Security-Policy that allows only this origin's
own files (no inline script or style, no eval, no frames), and the usual companions."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none';"
    " frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
_RAW = [(k.encode(), v.encode()) for k, v in HEADERS.items()]


class PageHeaders:
    """ASGI middleware: every HTML response (the pages, the unsubscribe page) gets the
    headers; JSON answers are left as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kind = next((v for k, v in headers if k == b"content-type"), b"")
                if kind.startswith((b"text/html", b"text/javascript", b"text/css")):
                    message["headers"] = headers + _RAW
            await send(message)

        await self.app(scope, receive, send_with_headers)
