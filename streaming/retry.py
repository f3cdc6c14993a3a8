"""Retrying while PostgreSQL is unavailable: back off, never skip, never crash-loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
import psycopg.errors

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Errors that mean "the database is not reachable right now", worth waiting for.
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)


def is_transient(exc: BaseException) -> bool:
    """Connection loss, a server restart, a deadlock: waiting helps. psycopg files "program
    limit exceeded" (SQLSTATE class 54, e.g. a value over a b-tree index's row size) under
    OperationalError too, but the same value fails the same way every time: never waited for."""
    return isinstance(exc, TRANSIENT) and not isinstance(exc, psycopg.errors.ProgramLimitExceeded)


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0

    def delays(self) -> DelayIter:
        return DelayIter(self)


class DelayIter:
    def __init__(self, b: Backoff) -> None:
        self._b = b
        self._next = b.initial

    def __next__(self) -> float:
        d = self._next
        self._next = min(self._b.maximum, self._next * self._b.factor)
        return d


def retry_transient(
    action: Callable[[], T],
    on_failure: Callable[[BaseException], None],
    should_stop: Callable[[], bool],
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `action` until it succeeds; on a transient error call `on_failure` (reconnect) and wait.

    Raises the last error only when `should_stop()` turns true while waiting, so that a SIGTERM
    during a database outage still ends the process (the batch is not committed anywhere, so
    nothing is lost: it is read again on restart).
    """
    delays = (backoff or Backoff()).delays()
    while True:
        try:
            return action()
        except TRANSIENT as exc:
            if not is_transient(exc):
                raise
            delay = next(delays)
            log.warning("PostgreSQL unavailable (%s); retrying in %.1fs", str(exc).strip(), delay)
            if should_stop():
                raise
            sleep(delay)
            try:
                on_failure(exc)
            except TRANSIENT as again:
                log.warning("reconnect failed: %s", str(again).strip())
