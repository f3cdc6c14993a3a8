"""Closed-loop HTTP load at a fixed number of keep-alive connections: `wrk` when installed, else
a small asyncio client.

Why wrk first: on a 2-core machine the load generator shares the cores with the server and
PostgreSQL. The asyncio client spends about as much CPU per request as the server's routing
does, so with it the figures measure the client as much as the server; wrk (C, one thread,
epoll) costs a small fraction of that. `scripts/system-deps.sh --bench` installs it from
Debian's packages. Both drivers pick a random path of the endpoint's list per request, send the
API key, and count non-200 answers and, for searches, the log lines in each page.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: what one search hit looks like in a page (one per log line)
ROW_MARKER = b'"kafka_offset"'


@dataclass
class Run:
    """What one endpoint's measured window gave."""

    requests: int = 0  # 200 answers finished in the window
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0  # answers other than 200, and socket errors
    rows: int = 0  # log lines in the search pages
    load_before: float = 0.0
    load_after: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def driver_name() -> str:
    return "wrk 4 (1 thread)" if wrk_path() else "asyncio client (wrk not installed)"


def run_load(port: int, paths: list[str], key: str, seconds: float, warmup: float, connections: int) -> Run:
    """`connections` clients, each sending its next request when the previous answer is in."""
    load_before = os.getloadavg()[0]
    wrk = wrk_path()
    if wrk:
        run = _run_wrk(wrk, port, paths, key, seconds, warmup, connections)
    else:
        run = asyncio.run(_run_asyncio(port, paths, key, seconds, warmup, connections))
    run.load_before, run.load_after = load_before, os.getloadavg()[0]
    return run


# -- wrk ----------------------------------------------------------------------------------------

_WRK_SCRIPT = """
local paths = {PATHS}
wrk.headers["X-API-Key"] = {KEY}
local threads = {}
local next_id = 1
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(id * 7919)
  rows = 0
  bad = 0
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  elseif {COUNT_ROWS} then
    local from = 1
    while true do
      local at = string.find(body, '"kafka_offset"', from, true)
      if at == nil then break end
      rows = rows + 1
      from = at + 1
    end
  end
end
function done(summary, latency, requests)
  local r, b = 0, 0
  for _, t in ipairs(threads) do
    r = r + t:get("rows")
    b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"bad": %d, "socket_errors": %d, "rows": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    b, e.connect + e.read + e.write + e.timeout, r))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII is a valid Lua string literal


def _run_wrk(
    wrk: str, port: int, paths: list[str], key: str, seconds: float, warmup: float, connections: int
) -> Run:
    count_rows = any("/logs/search" in p for p in paths)
    script = (
        _WRK_SCRIPT.replace("{PATHS}", "{" + ", ".join(_lua_string(p) for p in paths) + "}")
        .replace("{KEY}", _lua_string(key))
        .replace("{COUNT_ROWS}", "true" if count_rows else "false")
    )
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp, "load.lua")
        lua.write_text(script)

        def wrk_for(duration: float) -> dict[str, int]:
            out = subprocess.run(
                [
                    wrk,
                    "-t1",
                    f"-c{connections}",
                    f"-d{max(1, round(duration))}s",
                    "--timeout",
                    "10s",
                    "-s",
                    str(lua),
                    f"http://127.0.0.1:{port}",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            line = next(x for x in out.splitlines() if x.startswith("WRK "))
            result: dict[str, int] = json.loads(line[4:])
            return result

        if warmup > 0:
            wrk_for(warmup)  # warm caches and connections; its figures are not kept
        got = wrk_for(seconds)
    ok = got["requests"] - got["bad"]
    # wrk's window is its own duration; scale to the requested seconds so that req/s reads the same
    scale = seconds / (got["duration_us"] / 1e6) if got["duration_us"] else 1.0
    return Run(
        requests=round(ok * scale),
        p50_ms=got["p50_us"] / 1000,
        p99_ms=got["p99_us"] / 1000,
        errors=got["bad"] + got["socket_errors"],
        rows=round(got["rows"] * scale),
    )


# -- asyncio fallback ---------------------------------------------------------------------------


async def request_once(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    """One request on a keep-alive connection: its status and body."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def _run_asyncio(
    port: int, paths: list[str], key: str, seconds: float, warmup: float, connections: int
) -> Run:
    run = Run()
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rng = random.Random(k)
        try:
            while True:
                path = rng.choice(paths)
                raw = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n\r\n").encode()
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                status, body = await request_once(reader, writer, raw)
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop:
                    if status == 200:
                        run.latencies.append(t1 - t0)
                        run.rows += body.count(ROW_MARKER)
                    else:
                        run.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    run.requests = len(run.latencies)
    run.p50_ms, run.p99_ms = _pct(run.latencies, 50) * 1000, _pct(run.latencies, 99) * 1000
    return run
