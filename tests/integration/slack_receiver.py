"""A local stand-in for Slack's incoming webhooks: a real HTTP server in a thread, on a free port.

Each path (`/hook/<name>`) answers from a script of outcomes, then 200 "ok" as Slack does:
"500", "404", "429:<retry-after seconds>" or "sleep:<seconds>" (answers late, after the
client gave up). Only requests answered 2xx count as delivered messages.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    outcome: str
    payload: dict[str, Any]


@dataclass
class SlackReceiver:
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    scripts: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    def url(self, name: str = "a") -> str:
        return f"http://127.0.0.1:{self.port}/hook/{name}"

    def script(self, name: str, *outcomes: str) -> None:
        with self.lock:
            self.scripts[f"/hook/{name}"].extend(outcomes)

    def delivered(self, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r.payload
                for r in self.requests
                if r.outcome == "200" and (name is None or r.path == f"/hook/{name}")
            ]

    def outcomes(self) -> list[str]:
        with self.lock:
            return [r.outcome for r in self.requests]

    def start(self) -> SlackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    script = receiver.scripts[self.path]
                    outcome = script.popleft() if script else "200"
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"invalid": body.decode(errors="replace")}
                if outcome.startswith("sleep:"):
                    with receiver.lock:
                        receiver.requests.append(Request(self.path, "timeout", payload))
                    time.sleep(float(outcome.split(":")[1]))
                    self._answer(200, "ok")
                    return
                with receiver.lock:
                    receiver.requests.append(Request(self.path, outcome.split(":")[0], payload))
                if outcome.startswith("429"):
                    retry_after = outcome.split(":")[1] if ":" in outcome else "1"
                    self._answer(429, "rate_limited", {"Retry-After": retry_after})
                elif outcome == "200":
                    self._answer(200, "ok")
                else:
                    self._answer(int(outcome), "no_service" if outcome == "404" else "server_error")

            def _answer(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    data = text.encode()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout): as with Slack, the message was still posted

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
