"""The `ferry` command as an operator runs it: a process of its own, its output read back."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager


async def ferry(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
    """`ferry ARGS...` in a wide terminal; its output, once it has exited with 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ferry.cli", *args,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, out.decode() + err.decode()
    return out.decode()


@asynccontextmanager
async def running(
    *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`ferry ARGS...` as a long-running process of its own (its output dropped), told to
    stop (SIGTERM) and waited for when the block ends."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ferry.cli", *args, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)
