"""The chaos run's processes and its nemesis: Ferry's processes under a supervisor that
restarts what a fault killed (and counts any other exit), and the schedule of faults.

Every fault is a real one, made with the stack's own commands (`Stack.stop_service`,
`Stack.start_service`) or a signal to a Ferry process: nothing is simulated.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ferry.devstack import Stack

# The kinds of fault, each made at least twice in a default run.
KINDS = (
    "kill-bridge",
    "kill-worker",
    "kill-meter",
    "kill-kafka",
    "kill-temporal",
    "stop-postgres-immediate",
    "stop-clamd",
    "stop-emulator",
)
EMULATORS = ("s3", "gcs", "azurite")


@dataclass
class Proc:
    """One Ferry process (`ferry consume`, `ferry worker`, `ferry meter`) of the run."""

    name: str
    command: str
    env: dict[str, str]
    logs: Path
    popen: subprocess.Popen[bytes] | None = None
    killed_on_purpose: bool = False
    unexpected_exits: list[tuple[float, int]] = field(default_factory=list)
    restarts: int = 0

    def start(self) -> None:
        log = (self.logs / f"{self.name}.log").open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "ferry.cli", self.command],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.killed_on_purpose = False

    def kill(self) -> None:
        assert self.popen is not None
        self.killed_on_purpose = True
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, as at the end of a run: the process finishes its work and leaves."""
        if self.popen is not None and self.popen.poll() is None:
            self.killed_on_purpose = True
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def check(self, started: float) -> None:
        """Restart the process if it exited by itself (a bug: every Ferry process must
        outlive every outage), counting the exit."""
        if self.popen is None or self.killed_on_purpose:
            return
        code = self.popen.poll()
        if code is not None:
            self.unexpected_exits.append((round(time.monotonic() - started, 1), code))
            self.start()


@dataclass
class Fault:
    kind: str
    target: str
    at: float  # seconds into the run, when injected
    restored: float | None = None  # seconds into the run, when the service was back
    detail: str = ""


def schedule(duration: float, seed: int, count: int, kinds: tuple[str, ...] = KINDS) -> list[str]:
    """`count` faults: every kind once, then every kind a second time, as far as `count`
    goes; the rest at random; in a seeded random order."""
    rng = random.Random(seed)
    picks = [*kinds, *kinds][:count]
    while len(picks) < count:
        picks.append(rng.choice(kinds))
    rng.shuffle(picks)
    return picks


class Nemesis:
    """Makes the faults of a schedule one after another, spread over the run."""

    def __init__(
        self,
        stack: Stack,
        procs: dict[str, list[Proc]],
        started: float,
        seed: int,
        outage_seconds: float = 30.0,
        down_seconds: float = 4.0,
    ) -> None:
        self.stack = stack
        self.procs = procs
        self.started = started
        self.rng = random.Random(seed + 1)
        self.outage = outage_seconds
        self.down = down_seconds
        self.faults: list[Fault] = []

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    async def run(self, kinds: list[str], duration: float) -> None:
        """Faults evenly spread over `duration`; each is over (its service back) before
        the next begins, so each recovery is measured on its own."""
        gap = duration / (len(kinds) + 1)
        for i, kind in enumerate(kinds):
            due = gap * (i + 1)
            await asyncio.sleep(max(0.0, due - self.now()))
            await self.inject(kind)

    async def inject(self, kind: str) -> None:
        if kind.startswith("kill-") and kind[5:] in self.procs:
            group = self.procs[kind[5:]]
            proc = self.rng.choice(group)
            fault = Fault(kind, proc.name, self.now())
            self.faults.append(fault)
            await asyncio.to_thread(proc.kill)
            await asyncio.sleep(self.down)
            await asyncio.to_thread(proc.start)
            proc.restarts += 1
            fault.restored = self.now()
            return
        if kind == "stop-emulator":
            await self.emulator_outage()
            return
        service, sig, pause = {
            "kill-kafka": ("kafka", signal.SIGKILL, self.down),
            "kill-temporal": ("temporal", signal.SIGKILL, self.down),
            "stop-postgres-immediate": ("postgres", signal.SIGQUIT, self.down),
            "stop-clamd": ("clamd", None, self.outage),
        }[kind]
        fault = Fault(kind, service, self.now())
        self.faults.append(fault)
        await asyncio.to_thread(self.stack.stop_service, service, sig)
        await asyncio.sleep(pause)
        await asyncio.to_thread(self.stack.start_service, service)
        fault.restored = self.now()

    async def emulator_outage(self) -> None:
        """A storage emulator away for the outage: GCS' and Azure's stopped and started on
        their data; S3's (moto, which keeps its buckets in memory only) frozen and thawed."""
        service = self.rng.choice(EMULATORS)
        fault = Fault("stop-emulator", service, self.now())
        self.faults.append(fault)
        if service == "s3":
            fault.detail = "frozen (SIGSTOP), thawed (SIGCONT): moto keeps no data on disk"
            await asyncio.to_thread(self.stack.pause_service, service)
            await asyncio.sleep(self.outage)
            await asyncio.to_thread(self.stack.pause_service, service, False)
        else:
            await asyncio.to_thread(self.stack.stop_service, service)
            await asyncio.sleep(self.outage)
            await asyncio.to_thread(self.stack.start_service, service)
        fault.restored = self.now()

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart any process that exited by itself, counting it."""
        while not stop.is_set():
            for group in self.procs.values():
                for proc in group:
                    proc.check(self.started)
            await asyncio.sleep(0.5)
