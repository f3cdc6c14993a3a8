"""bench/bench_soak.py's own logic: it imports (its helpers live in tests/support.py and
bench/bench_api.py and have moved before), its API readers record the HTTP status each answer
carried, and its memory slope is MB per minute.

The readers talk to a small real HTTP/1.1 keep-alive server on loopback that answers every
request with the status it was given, so a status read wrongly shows as a wrong count."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_soak  # noqa: E402


@contextmanager
def http_server(status: int, reason: str) -> Iterator[tuple[int, list[bytes]]]:
    """(port, request heads seen) of a server answering `status` to every request."""
    heads: list[bytes] = []
    ready = threading.Event()
    port_box: list[int] = []
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                body = b'{"items": []}'
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve() -> asyncio.Server:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_box.append(server.sockets[0].getsockname()[1])
        ready.set()
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve())
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield port_box[0], heads
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.mark.parametrize(("status", "reason"), [(200, "OK"), (429, "Too Many Requests")])
def test_readers_record_each_answers_status(status: int, reason: str) -> None:
    with http_server(status, reason) as (port, heads):
        load = bench_soak.ReadLoad(port, "the-key", clients=2, pause=0.01)
        load.start(time.perf_counter())
        deadline = time.monotonic() + 10
        while len(load.results) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        load.stop()
    assert len(load.results) >= 20
    assert load.failures == 0
    assert {r[3] for r in load.results} == {status}
    assert {r[1] for r in load.results} <= {"anomalies", "metrics", "search"}
    # every request carried the key, and each answer was matched to one request
    assert all(b"X-API-Key: the-key" in h for h in heads)
    assert len(heads) >= len(load.results)


def test_slope_is_megabytes_per_minute() -> None:
    rising = [(t, 100 + 0.5 * t / 60) for t in range(0, 1800, 5)]  # 0.5 MB per minute
    flat = [(t, 320.0) for t in range(0, 1800, 5)]
    assert bench_soak.slope_per_minute(rising) == pytest.approx(0.5)
    assert bench_soak.slope_per_minute(flat) == pytest.approx(0.0)
    assert bench_soak.slope_per_minute(rising[:1]) == 0.0
