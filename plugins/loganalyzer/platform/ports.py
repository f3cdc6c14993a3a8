"""Ports the platform binds on a user's behalf: how a port setting is spelled, and what happens
when the port is taken.

One rule for every listener (the consumer's /metrics, `loganalyzer up`'s broker, AWS endpoint
and MLflow): a port the user chose and that is taken is an error of one line naming the port and
the setting to change (the caller prints it and exits with code 2), never a traceback. A port the
user did not choose is only a first guess: when it is taken (a second consumer on the same host)
the next free one is used, and the caller logs which.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How many ports above a default one are tried before any free port is taken.
FALLBACK_SPAN = 32


class PortUnavailable(Exception):
    """A port could not be bound; `reason` is the operating system's word for why."""

    def __init__(self, port: int, reason: str) -> None:
        super().__init__(f"port {port} is {reason}")
        self.port = port
        self.reason = reason

    def explain(self, what: str, setting: str) -> str:
        """The one line a user reads: which port, for what, and which setting changes it."""
        return (
            f"port {self.port} for {what} is {self.reason}: stop what runs there, or set {setting} "
            "to another port"
        )


def parse_port(raw: str, name: str) -> int | None:
    """A port setting: `off` or `-1` turns the listener off (None), `0` means any free port,
    otherwise 1-65535. Raises ValueError with a message naming the setting."""
    text = raw.strip().lower()
    if text in ("off", "-1"):
        return None
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a port (1-65535, 0 for any free port, -1 or off)") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{name}={port} is not a port (1-65535, 0 for any free port, -1 or off)")
    return port


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "not allowed (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRINUSE:
        return "taken"
    return f"unavailable ({exc.strerror or exc})"


def bind(open_listener: Callable[[int], T], port: int, *, fallback: bool) -> T:
    """`open_listener(port)` on `port`. With `fallback` (the user did not choose the port), a
    taken port is followed by the next FALLBACK_SPAN ports and then by any free port (0);
    without it, a taken port raises PortUnavailable. Binding is the only reliable test: a check
    before it would race with whoever binds next."""
    candidates = [port]
    if fallback and port != 0:
        candidates += [p for p in range(port + 1, port + 1 + FALLBACK_SPAN) if p <= 65535] + [0]
    first_error: PortUnavailable | None = None
    for candidate in candidates:
        try:
            return open_listener(candidate)
        except OSError as exc:
            error = PortUnavailable(candidate, _reason(exc))
            if not fallback:
                raise error from None
            first_error = first_error or error
    assert first_error is not None
    raise first_error


def is_free(port: int, host: str = "127.0.0.1") -> PortUnavailable | None:
    """None when a server could bind host:port now, else why not: a bind test with
    SO_REUSEADDR, as servers bind, so a port left in TIME_WAIT counts as free and a listener
    on any address counts as taken (a connect test misses a listener on another address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return PortUnavailable(port, _reason(exc))
    return None


def first_free(port: int, host: str = "127.0.0.1") -> int:
    """`port` or the first free one after it (then any free one): for a child process that
    binds the port itself, so the parent can print where it will be."""

    def probe(p: int) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, p))
            return int(s.getsockname()[1])

    return bind(probe, port, fallback=True)
