"""Request size limits, checked before routing: URL (414), headers (431), body (413).

Why a pure ASGI middleware and not a dependency: the body must be refused while it arrives,
before FastAPI reads it all into memory, and an oversized URL or header block before any route,
key lookup or database work. A declared Content-Length over the limit is refused at once; a
chunked body is counted as it streams and refused when it passes the limit.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def url_bytes(scope: Scope) -> int:
    path = scope.get("raw_path") or str(scope.get("path", "")).encode()
    query = scope.get("query_string") or b""
    return len(path) + (1 + len(query) if query else 0)


def header_bytes(scope: Scope) -> int:
    """Bytes of the header block as sent: `name: value\\r\\n` per header."""
    return sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))


class RequestLimits:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_url_bytes: int, max_header_bytes: int
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_url = max_url_bytes
        self.max_headers = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (n := url_bytes(scope)) > self.max_url:
            await send_json(send, 414, f"the URL is {n} bytes; at most {self.max_url} are accepted")
            return
        size = 0
        declared: bytes | None = None
        chunked = False
        for name, value in scope.get("headers", ()):
            size += len(name) + len(value) + 4
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if size > self.max_headers:
            await send_json(
                send, 431, f"the request headers are {size} bytes; at most {self.max_headers} are accepted"
            )
            return
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await send_json(send, 400, "the Content-Length header is not a number")
                return
            if length > self.max_body:
                await send_json(send, 413, self._body_message(length))
                return
        if not chunked:
            # the HTTP server frames the body by Content-Length (none: no body), so what the app
            # can receive is already bounded: no need to count it
            await self.app(scope, receive, send)
            return
        received = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            # Past the limit the 413 is sent from here and the app sees the client go away: an
            # exception raised here would be turned into a parse error by FastAPI's body reader.
            nonlocal received, started, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    refused = True
                    if not started:
                        started = True
                        await send_json(send, 413, self._body_message(received, streamed=True))
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app answers after it is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not refused:
                raise

    def _body_message(self, size: int, streamed: bool = False) -> str:
        what = f"more than {self.max_body}" if streamed else str(size)
        return f"the request body is {what} bytes; at most {self.max_body} are accepted"
