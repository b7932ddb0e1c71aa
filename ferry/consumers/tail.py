"""Following a topic, decoded: for `ferry tail`, the demo, and tests that wait for events."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from ferry.schemas import EventDecodeError, decode

Event = dict[str, Any]


def decode_record(value: bytes | None, headers: Any) -> Event:
    """A record as a dict: the event, or why it could not be decoded, plus Ferry's headers."""
    content_type = next((v for k, v in headers or () if k == "content-type"), None)
    try:
        event: Event = decode(value or b"", content_type)
    except EventDecodeError as exc:
        event = {"undecodable": str(exc), "raw": (value or b"")[:200].hex()}
    ferry_headers = {
        k: v.decode(errors="replace")
        for k, v in headers or ()
        if k.startswith("ferry-") or k == "traceparent"
    }
    if ferry_headers:
        event["headers"] = ferry_headers
    return event


class TopicFollower:
    """Reads every partition of a topic without a consumer group.

    `start()` returns once the starting positions are fixed, so nothing
    published after it returns can be missed.
    """

    def __init__(self, bootstrap: str, topic: str, from_beginning: bool = False) -> None:
        self.topic = topic
        self.from_beginning = from_beginning
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._pending: collections.deque[Event] = collections.deque()

    async def start(self, timeout: float = 30.0) -> None:
        await self._consumer.start()
        if self.topic not in await self._consumer.topics():
            await self._consumer.stop()
            raise LookupError(f"no topic {self.topic!r} on the broker")
        self._consumer.subscribe([self.topic])
        # Without a group, aiokafka assigns every partition once it has metadata.
        async with asyncio.timeout(timeout):
            while not self._consumer.assignment():
                await asyncio.sleep(0.05)
        assigned = sorted(self._consumer.assignment())
        # Explicit offsets: a seek_to_* followed by position() can resolve lazily.
        bounds = await (
            self._consumer.beginning_offsets(assigned)
            if self.from_beginning
            else self._consumer.end_offsets(assigned)
        )
        for tp in assigned:
            self._consumer.seek(tp, bounds[tp])

    async def stop(self) -> None:
        await self._consumer.stop()

    async def __aenter__(self) -> TopicFollower:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def records(self, stop: asyncio.Event | None = None) -> AsyncIterator[Event]:
        """Each record from where the last reader left off: a batch fetched and not yet
        yielded waits here for the next reader (`wait_for` stops mid-batch)."""
        while stop is None or not stop.is_set():
            if not self._pending:
                batches = await self._consumer.getmany(timeout_ms=200)
                self._pending.extend(
                    decode_record(record.value, record.headers)
                    for records in batches.values()
                    for record in records
                )
            while self._pending:
                yield self._pending.popleft()

    async def wait_for(
        self, match: Callable[[Event], bool], count: int = 1, timeout: float = 60.0
    ) -> list[Event]:
        """The first `count` events that match, or TimeoutError."""
        found: list[Event] = []

        async def collect() -> None:
            async for event in self.records():
                if match(event):
                    found.append(event)
                    if len(found) >= count:
                        return

        await asyncio.wait_for(collect(), timeout)
        return found


async def follow(
    bootstrap: str, topic: str, from_beginning: bool, stop: asyncio.Event
) -> AsyncIterator[Event]:
    """Yield each record's decoded event until `stop` is set."""
    async with TopicFollower(bootstrap, topic, from_beginning) as follower:
        async for event in follower.records(stop):
            yield event
