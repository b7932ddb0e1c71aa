"""The dead-letter topic: list what is there and why; replay chosen records to their source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from ferry.consumers.tail import decode_record
from ferry.contracts.topics import DLQ
from ferry.producers import EventPublisher

FERRY_HEADERS = (
    "ferry-error",
    "ferry-source-topic",
    "ferry-source-partition",
    "ferry-source-offset",
    "ferry-failed-at",
)


@dataclass
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return None

    @property
    def reason(self) -> str:
        return self.header("ferry-error") or "(no reason recorded)"

    @property
    def source_topic(self) -> str | None:
        return self.header("ferry-source-topic")

    def decoded(self) -> dict[str, Any]:
        return decode_record(self.value, self.headers)

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the record had before it was dead-lettered."""
        return [(k, v) for k, v in self.headers if k not in FERRY_HEADERS]


async def read_dead_letters(
    bootstrap: str, offsets: set[int] | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """Dead letters from the start of the topic (all, the last `limit`, or those at `offsets`)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(DLQ, p) for p in sorted(consumer.partitions_for_topic(DLQ) or {0})
        ]
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        letters: list[DeadLetter] = []
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    if offsets is None or r.offset in offsets:
                        letters.append(
                            DeadLetter(tp.partition, r.offset, r.key, r.value, list(r.headers))
                        )
                if records and records[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
        letters.sort(key=lambda d: (d.partition, d.offset))
        return letters[-limit:] if limit else letters
    finally:
        await consumer.stop()


async def replay(bootstrap: str, offsets: set[int]) -> list[tuple[DeadLetter, str]]:
    """Re-publish the dead letters at `offsets` to their source topics, as they first arrived."""
    letters = await read_dead_letters(bootstrap, offsets=offsets)
    missing = offsets - {d.offset for d in letters}
    if missing:
        raise LookupError(f"no dead letter at offset(s) {sorted(missing)}")
    replayed = []
    async with EventPublisher(bootstrap) as publisher:
        for letter in letters:
            if not letter.source_topic:
                raise ValueError(f"dead letter {letter.offset} does not name its source topic")
            await publisher.send_raw(
                letter.source_topic, letter.value, letter.key, letter.original_headers()
            )
            replayed.append((letter, letter.source_topic))
    return replayed
