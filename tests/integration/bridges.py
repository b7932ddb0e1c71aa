"""Running an in-process bridge for the length of a block."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ferry.consumers.bridge import Bridge


@asynccontextmanager
async def running(bridge: Bridge) -> AsyncIterator[Bridge]:
    """Run `bridge`: the block begins once it has joined its group, and when the block
    ends the bridge finishes its records, commits and leaves, as on SIGTERM."""
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.wait_for(bridge.ready.wait(), 60)
        yield bridge
    finally:
        stop.set()
        await task
