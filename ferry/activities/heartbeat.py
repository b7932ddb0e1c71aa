"""Heartbeats for long activities, on an interval derived from the heartbeat timeout.

In the style of temporalio's samples-python `custom_decorator`: `heartbeating()`
keeps telling Temporal the attempt is alive while its block runs, so a dead
worker's attempt times out and is retried elsewhere; `auto_heartbeat` does the
same around a whole activity; `Pulse` reports progress from a loop over chunks,
at most once an interval and never in the first, so that an activity that ends
sooner sends no heartbeat at all (each one the server takes is a write of the
workflow's state). Outside an activity (a benchmark calling the method
directly), and in a local activity (its worker is the workflow's own, which Temporal
watches through the workflow task), all three do nothing.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
R = TypeVar("R")

# When the activity has no heartbeat timeout, heartbeats only carry cancellation.
DEFAULT_INTERVAL = 5.0


def _beating() -> bool:
    """Whether this is an activity that heartbeats: in one, and not a local one."""
    return activity.in_activity() and not activity.info().is_local


def heartbeat_interval(default: float = DEFAULT_INTERVAL) -> float:
    """Half the current activity's heartbeat timeout, or `default` when it has none.

    A beat every half timeout leaves the other half for a busy event loop. The
    SDK sends the server at most one heartbeat per 80% of the timeout whatever
    the interval, so beating more often would not be seen sooner.
    """
    timeout = activity.info().heartbeat_timeout
    return timeout.total_seconds() / 2 if timeout else default


class Pulse:
    """Progress heartbeats from a loop: `pulse(details)` on each step sends one when an
    interval (`heartbeat_interval(default)`) has passed since the pulse began or since
    its last beat. The SDK throttles further (see `heartbeat_interval`)."""

    def __init__(self, default: float = DEFAULT_INTERVAL) -> None:
        self._inside = _beating()
        self._every = heartbeat_interval(default) if self._inside else 0.0
        self._due = time.monotonic() + self._every

    def __call__(self, *details: Any) -> None:
        if not self._inside:
            return
        now = time.monotonic()
        if now >= self._due:
            self._due = now + self._every
            activity.heartbeat(*details)


async def _beat_every(seconds: float, progress: Callable[[], Any] | None) -> None:
    while True:
        await asyncio.sleep(seconds)
        if progress is None:
            activity.heartbeat()
        else:
            activity.heartbeat(progress())


@asynccontextmanager
async def heartbeating(
    progress: Callable[[], Any] | None = None, *, default: float = DEFAULT_INTERVAL
) -> AsyncIterator[None]:
    """Heartbeat every `heartbeat_interval(default)` seconds until the block ends.

    `progress`, when given, is called for each heartbeat and its value sent as
    the details (what the Temporal UI shows, and `heartbeat_details` on a retry).
    """
    if not _beating():
        yield
        return
    ticker = asyncio.create_task(_beat_every(heartbeat_interval(default), progress))
    try:
        yield
    finally:
        ticker.cancel()
        await asyncio.wait([ticker])


def auto_heartbeat(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorate an async activity (under `@activity.defn`) to heartbeat while it runs."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        async with heartbeating():
            return await fn(*args, **kwargs)

    return wrapper
