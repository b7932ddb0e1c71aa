"""The bridge's flow control, apart from Kafka and Temporal: what is in flight, what may be
committed, how much room is left.

Pure bookkeeping over partition keys and offsets (any hashable key; the bridge
uses aiokafka's `TopicPartition`), so it is tested without a broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class PartitionProgress:
    """Offsets of one partition in flight; what may be committed is the contiguous done prefix."""

    def __init__(self) -> None:
        self._offsets: deque[int] = deque()
        self._done: set[int] = set()
        self.committed: int | None = None
        self.next_offset: int | None = None  # one past the last record handed out
        self.waiting = 0  # records behind an earlier record of their key

    def add(self, offset: int) -> None:
        self._offsets.append(offset)
        self.next_offset = offset + 1

    def finish(self, offset: int) -> None:
        self._done.add(offset)

    def commit_point(self) -> int | None:
        """The next offset to commit (one past the last contiguous finished record)."""
        point = None
        while self._offsets and self._offsets[0] in self._done:
            offset = self._offsets.popleft()
            self._done.discard(offset)
            point = offset + 1
        return point

    @property
    def unfinished(self) -> int:
        return len(self._offsets) - len(self._done)

    @property
    def keys_busy(self) -> bool:
        """Whether more of its records wait behind their keys than are at Temporal."""
        return self.waiting > self.unfinished - self.waiting

    @property
    def uncommitted(self) -> int:
        return len(self._offsets)


class Flow(Generic[P]):
    """The progress of every assigned partition, and the room it leaves for more records."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.partitions: dict[P, PartitionProgress] = {}
        self.at_temporal = 0  # records at Temporal, as of the last `room()`

    def progress(self, partition: P) -> PartitionProgress:
        return self.partitions.setdefault(partition, PartitionProgress())

    def assigned(self, partition: P, position: int) -> None:
        """Where an assigned partition starts: its backlog is known from the first fetch on."""
        self.progress(partition).next_offset = position

    def revoked(self, partition: P) -> None:
        self.partitions.pop(partition, None)

    def room(self) -> int:
        """The room left for records.

        Up to `max_in_flight` records may be at Temporal, and twice as many may
        wait behind an earlier record of their key: those are not at Temporal,
        so one busy key does not take the others' room, and at the end of a
        backlog, where the last records come from fewer keys, there are still
        enough of them to keep Temporal busy. Records that finish make room for
        the next, so under load nearly `max_in_flight` requests stay at
        Temporal. Finished records wait for the next commit; behind a slow
        record their offsets pile up, so they are bounded too (four times as many).
        """
        waiting = sum(p.waiting for p in self.partitions.values())
        in_flight = sum(p.unfinished for p in self.partitions.values()) - waiting
        uncommitted = sum(p.uncommitted for p in self.partitions.values())
        self.at_temporal = in_flight
        most = self.max_in_flight
        return min(most - in_flight, 2 * most - waiting, 4 * most - uncommitted)

    @property
    def least_poll(self) -> int:
        """Under load, the loop polls once this much room is free, not for every record."""
        return max(1, self.max_in_flight // 16)

    def idle(self) -> bool:
        """Whether no record is in flight: whatever room there is, is all there will be."""
        return all(p.unfinished == 0 for p in self.partitions.values())

    def keys_busy(self, partition: P) -> bool:
        progress = self.partitions.get(partition)
        return progress is not None and progress.keys_busy

    def backlog(self, partition: P, highwater: int | None) -> int:
        """Records of `partition` not handed out yet, as of the last fetch (`highwater`).

        0 before a fetch of it has returned (no record of it can be at hand
        then); 1 if its position is not known, so that it is asked.
        """
        if highwater is None:
            return 0
        progress = self.partitions.get(partition)
        if progress is None or progress.next_offset is None:
            return 1
        return max(0, int(highwater) - progress.next_offset)

    def commit_points(self, partitions: Iterable[P] | None = None) -> dict[P, int]:
        """Per partition, one past the contiguous run of finished records not committed yet."""
        offsets = {}
        for partition in list(partitions if partitions is not None else self.partitions):
            progress = self.partitions.get(partition)
            point = progress.commit_point() if progress else None
            if point is not None and progress is not None:
                offsets[partition] = point
                progress.committed = point
        return offsets

    def lag(self, partition: P, highwater: int | None) -> int | None:
        """Records between the committed offset and the end of the partition, if known."""
        progress = self.partitions.get(partition)
        if highwater is None or progress is None or progress.committed is None:
            return None
        return highwater - progress.committed
