"""A connection pool that serves waiting requests in arrival order.

SQLAlchemy's async queue lets a request that arrives just as a connection comes back take
it ahead of the requests already waiting (asyncio.Queue re-queues a woken getter at the
back). With SQLite's single connection that made latency bimodal under load: measured
with 16 connections, p90 was 2.5 times p50 and p99 ran to hundreds of milliseconds. Here a
returned connection goes straight to the longest waiter.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_
from sqlalchemy.util.queue import Empty, Full, QueueCommon


class FairQueue(QueueCommon[Any]):
    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize, self.use_lifo = maxsize, use_lifo  # use_lifo: kept for pool.recreate()
        self._items: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[Any]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skips waiters that timed out or were cancelled
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._items.append(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise Empty()
        return self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._items or not block:  # items wait only while nobody is waiting for them
            return self.get_nowait()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(waiter)
        expiry = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            return await_(waiter)
        except asyncio.CancelledError:
            # Cancelled just after being handed a connection: pass it on, do not leak it.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.put_nowait(waiter.result())
            raise
        finally:
            if expiry is not None:
                expiry.cancel()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(Empty())


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    _queue_class = FairQueue  # type: ignore[assignment]
