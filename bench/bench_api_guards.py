"""What the API's request guards cost per request: size limits + per-key rate limit.

Calls an ASGI app that answers 200 at once, bare and wrapped in RequestLimits and RateLimit (as
serving.main assembles them), with the headers of a real API call, in one process and one event
loop, no network: the difference is the guards' own CPU per request. Same-run reference: the bare
app. Usage: .venv/bin/python bench/bench_api_guards.py [--requests 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from serving.keys import new_key
from serving.limits import RequestLimits
from serving.rate_limit import RateLimit, RateLimiter


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(app: Any, scope: dict[str, Any], n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    start = time.perf_counter()
    for _ in range(n):
        await app(scope, receive, send)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key = new_key().secret_key
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/anomalies",
        "raw_path": b"/api/v1/anomalies",
        "query_string": b"limit=50&service=svc-a&status=open",
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"python-httpx/0.28"),
            (b"accept", b"*/*"),
            (b"x-api-key", key.encode()),
        ],
    }
    limiter = RateLimiter(rate=1e12, burst=1e12)  # never refuses: the cost of the check, not of 429s
    guarded = RequestLimits(
        RateLimit(ok_app, limiter), max_body_bytes=1_048_576, max_url_bytes=8192, max_header_bytes=16384
    )
    print(f"load average {os.getloadavg()[0]:.1f}, {args.requests:,} requests per round")
    for r in range(args.rounds):
        bare = asyncio.run(run(ok_app, scope, args.requests))
        guards = asyncio.run(run(guarded, scope, args.requests))
        per_bare = bare / args.requests * 1e6
        per_guarded = guards / args.requests * 1e6
        print(
            f"round {r + 1}: bare app {per_bare:.2f} µs/request, with the guards "
            f"{per_guarded:.2f} µs/request (guards: {per_guarded - per_bare:.2f} µs)"
        )


if __name__ == "__main__":
    main()
