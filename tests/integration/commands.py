"""The `ferry` command as an operator runs it: a process of its own, its output read back."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping


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
