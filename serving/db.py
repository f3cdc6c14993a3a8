"""A small fixed-size pool of async psycopg connections (the lock has no psycopg-pool).

Why a fixed pool of a few connections: on 2 cores, 4 connections per worker kept the database
busy without queueing inside it; more made search p99 worse. Why `prepare_threshold=None`: a
prepared (generic) plan cannot know how common a search term or a tenant is, and picked
sequential scans where the custom plan uses the index. `jit=off`: JIT compilation costs
~10-50 ms per query and these queries are short. The statement timeout bounds what one request
can cost the database. `timezone=UTC`: documents PostgreSQL renders itself (anomaly by id)
write timestamps as the API's other answers do, with +00:00. No parallel workers: with dozens of
requests in flight on 2 cores, starting workers for one query only takes CPU from the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row


class DatabaseUnavailable(RuntimeError):
    """No connection could be made or kept; the API answers 503."""


Slot = psycopg.AsyncConnection[dict[str, object]] | None


class Pool:
    """Callers get a connection in the order they asked: a released connection is handed to the
    oldest waiter directly. (An asyncio.Queue lets a newly arrived caller take a just-released
    connection before the waiter it woke, which then queues again at the back: with 32 callers
    on 4 connections that barging put a few requests behind many others, and p99 at ~4x p50.)"""

    def __init__(self, conninfo: str, size: int, statement_timeout_ms: int) -> None:
        self._conninfo = conninfo
        self._size = size
        self._options = (
            f"-c jit=off -c statement_timeout={statement_timeout_ms} -c timezone=UTC "
            "-c max_parallel_workers_per_gather=0"
        )
        self._idle: list[Slot] = []  # a stack: the most recently used connection is warmest
        self._waiters: deque[asyncio.Future[Slot]] = deque()
        self._closed = False

    async def open(self) -> None:
        """Reserve the slots; connections are made lazily so the API starts while the DB is down."""
        self._idle = [None] * self._size

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            if conn is not None:
                await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, object]]:
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                prepare_threshold=None,
                row_factory=dict_row,
                connect_timeout=3,
                options=self._options,
                application_name="loganalyzer-api",
            )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(str(exc).strip().splitlines()[0]) from None

    async def acquire(self) -> Slot:
        """A slot (a connection, or None when it has not been made yet), first come first served;
        `connection()` is what routes use."""
        if self._idle and not self._waiters:
            return self._idle.pop()
        waiter: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed over as the caller went away: pass it on
            elif waiter in self._waiters:  # a release in between skipped it (cancelled) already
                self._waiters.remove(waiter)
            raise

    def release(self, conn: Slot) -> None:
        """Give a slot back: to the oldest caller still waiting, else to the idle stack."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, object]]]:
        conn = await self.acquire()
        try:
            if conn is None or conn.closed or conn.broken:
                if conn is not None:
                    await conn.close()
                conn = None
                conn = await self._connect()
            yield conn
        except psycopg.OperationalError as exc:
            if conn is not None and (conn.broken or conn.closed):
                await conn.close()
                conn = None
                raise DatabaseUnavailable(str(exc).strip().splitlines()[0]) from None
            raise
        finally:
            if conn is not None and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.close()  # left mid-transaction (cancelled request): do not reuse
                conn = None
            self.release(conn)
