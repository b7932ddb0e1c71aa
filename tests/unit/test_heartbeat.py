"""The heartbeat helpers: beats on half the heartbeat timeout, with progress, only while it runs;
progress from a loop sends none before the first interval."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from ferry.activities.heartbeat import (
    DEFAULT_INTERVAL,
    Pulse,
    auto_heartbeat,
    heartbeat_interval,
    heartbeating,
)

# asyncio may wake a hair early (clock resolution) and late on a busy machine.
EARLY = 0.9
LATE = 0.15


@dataclass
class Beat:
    at: float
    details: tuple[Any, ...]


def environment(heartbeat_timeout: timedelta | None) -> tuple[ActivityEnvironment, list[Beat]]:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=heartbeat_timeout)
    beats: list[Beat] = []
    env.on_heartbeat = lambda *details: beats.append(Beat(time.monotonic(), details))
    return env, beats


def assert_every(beats: list[Beat], started: float, interval: float, at_least: int) -> None:
    times = [started] + [b.at for b in beats]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(beats) >= at_least, gaps
    assert all(interval * EARLY <= gap <= interval + LATE for gap in gaps), gaps


async def test_heartbeats_arrive_every_half_heartbeat_timeout_and_stop_with_the_block() -> None:
    env, beats = environment(timedelta(seconds=0.4))
    marks: dict[str, float] = {}

    async def work() -> None:
        marks["started"] = time.monotonic()
        async with heartbeating():
            await asyncio.sleep(0.9)
        marks["ended"] = time.monotonic()

    await env.run(work)
    assert_every(beats, marks["started"], 0.2, at_least=3)
    assert len(beats) <= 4  # 0.9 s at one beat per 0.2 s
    assert all(b.details == () for b in beats)
    assert all(b.at <= marks["ended"] for b in beats)
    count = len(beats)
    await asyncio.sleep(0.6)  # three intervals: nothing beats once the block ended
    assert len(beats) == count


async def test_without_a_heartbeat_timeout_the_default_interval_applies() -> None:
    env, beats = environment(None)
    assert env.run(heartbeat_interval) == DEFAULT_INTERVAL == 5.0
    assert env.run(heartbeat_interval, 0.1) == 0.1
    assert environment(timedelta(minutes=1))[0].run(heartbeat_interval) == 30.0
    assert environment(timedelta(seconds=30))[0].run(heartbeat_interval, 0.1) == 15.0
    started = 0.0

    async def work() -> None:
        nonlocal started
        started = time.monotonic()
        async with heartbeating(default=0.1):
            await asyncio.sleep(0.45)

    await env.run(work)
    assert_every(beats, started, 0.1, at_least=3)


async def test_each_heartbeat_carries_the_progress_at_that_moment() -> None:
    env, beats = environment(timedelta(seconds=0.2))
    read = 0

    async def work() -> None:
        nonlocal read
        async with heartbeating(lambda: read):
            for _ in range(12):
                read += 1000
                await asyncio.sleep(0.05)

    await env.run(work)
    assert len(beats) >= 3
    values = [b.details for b in beats]
    assert all(len(details) == 1 and details[0] % 1000 == 0 for details in values), values
    assert [d[0] for d in values] == sorted(d[0] for d in values)
    assert 0 < values[0][0] < values[-1][0] <= 12_000


async def test_heartbeats_stop_when_the_block_fails() -> None:
    env, beats = environment(timedelta(seconds=0.2))

    async def work() -> None:
        async with heartbeating():
            await asyncio.sleep(0.25)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await env.run(work)
    count = len(beats)
    assert count >= 1
    await asyncio.sleep(0.4)
    assert len(beats) == count


async def test_a_cancelled_activity_stops_heartbeating() -> None:
    env, beats = environment(timedelta(seconds=0.2))

    async def work() -> None:
        async with heartbeating():
            await asyncio.sleep(10)

    task = asyncio.create_task(env.run(work))
    await asyncio.sleep(0.35)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    count = len(beats)
    assert count >= 1
    await asyncio.sleep(0.4)
    assert len(beats) == count


@dataclass
class Job:
    seconds: float


class Jobs:
    def __init__(self) -> None:
        self.ran = 0

    @activity.defn(name="long_job")
    @auto_heartbeat
    async def long_job(self, job: Job) -> str:
        """Sleeps, heartbeating only through the decorator."""
        self.ran += 1
        await asyncio.sleep(job.seconds)
        return "done"


async def test_the_decorator_heartbeats_for_the_whole_activity() -> None:
    definition = activity._Definition.must_from_callable(Jobs.long_job)
    assert (definition.name, definition.arg_types, definition.ret_type) == ("long_job", [Job], str)
    assert Jobs.long_job.__doc__ == "Sleeps, heartbeating only through the decorator."

    env, beats = environment(timedelta(seconds=0.2))
    jobs = Jobs()
    started = time.monotonic()
    assert await env.run(jobs.long_job, Job(0.45)) == "done"
    assert jobs.ran == 1
    assert_every(beats, started, 0.1, at_least=3)
    count = len(beats)
    await asyncio.sleep(0.3)
    assert len(beats) == count


async def test_outside_an_activity_nothing_beats_and_nothing_fails() -> None:
    jobs = Jobs()
    assert await jobs.long_job(Job(0.01)) == "done"  # a benchmark calls the method directly
    async with heartbeating(lambda: 1, default=0.01):
        await asyncio.sleep(0.05)
    Pulse(default=0.0)("ignored")


async def test_a_pulse_beats_once_an_interval_with_the_progress_then() -> None:
    env, beats = environment(timedelta(seconds=0.4))
    started = 0.0

    async def work() -> None:
        nonlocal started
        started = time.monotonic()
        pulse = Pulse()
        for read in range(1, 21):
            await asyncio.sleep(0.03)
            pulse(read * 1000)

    await env.run(work)
    # 0.6 s of steps at one beat per 0.2 s, none in the first 0.2 s
    assert 2 <= len(beats) <= 3, beats
    assert beats[0].at - started >= 0.2 * EARLY
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(beats)]
    assert all(gap >= 0.2 * EARLY for gap in gaps), gaps
    sent = [b.details[0] for b in beats]
    assert sent == sorted(sent) and all(value % 1000 == 0 for value in sent), sent


def test_a_short_loop_sends_no_heartbeat() -> None:
    env, beats = environment(timedelta(seconds=30))

    def work() -> None:
        pulse = Pulse()
        for read in range(10_000):
            pulse(read)

    send: Callable[[], None] = work
    env.run(send)
    assert beats == []
