"""The one way tests wait for something outside them to happen."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    condition: Callable[[], Any | Awaitable[Any]],
    what: str = "the condition",
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
) -> None:
    """Wait, in real time, until `condition()` (a value or an awaitable) is truthy.

    Raises AssertionError naming `what` after `timeout` seconds. On Temporal's
    time-skipping test server the clock does not skip while a test waits here.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
