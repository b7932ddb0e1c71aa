"""The Kafka → Temporal bridge: decode, route, start or signal, then commit.

Guarantees, and how:

- Nothing is lost. An offset is committed only over a contiguous run of
  records that Temporal acknowledged (or that went to the DLQ), so a crash
  replays records rather than skipping them.
- Nothing is acted on twice. Workflow IDs come from business keys, starts use
  a reuse policy that rejects duplicates and a conflict policy that refuses a
  second start of a running one, and signals carry the event ID, which workflows remember.
- Order where it matters. Records with the same key (the tenant) are handled
  one after another; different keys run concurrently.
- Poison never blocks a partition: a record that can never be routed goes to
  the DLQ with its reason, and the partition moves on.
- Backpressure, not loss. The Temporal client retries unavailable-server
  errors on its own, and the bridge does the same for Postgres (the ledger) and
  Kafka (dead letters; aiokafka retries commits); while they do, records stay
  in flight, and once `max_in_flight` wait and none finishes, the bridge pauses
  its partitions, resuming them by itself when the dependency is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError
from temporalio.client import Client

from ferry.consumers.flow import Flow
from ferry.consumers.metrics import BridgeMetrics
from ferry.consumers.patience import Patience, PatientLedger, Transient
from ferry.consumers.records import (
    HandlingConfig,
    Ledger,
    Outcome,
    Record,
    RecordHandler,
    namespace_retention,
)
from ferry.consumers.routes import Queue
from ferry.contracts.layout import DEFAULT_PLACES, Places
from ferry.contracts.topics import INBOUND_TOPICS
from ferry.logs import bind
from ferry.producers import EventPublisher

log = logging.getLogger(__name__)


@dataclass
class BridgeConfig:
    task_queues: Mapping[Queue, str]
    group_id: str = "ferry-bridge"
    topics: Sequence[str] = INBOUND_TOPICS
    # A new group starts at the beginning so that no event is missed; tests
    # that share a topic with earlier runs start at the end instead.
    auto_offset_reset: str = "earliest"
    max_in_flight: int = 256
    shutdown_grace: float = 30.0
    # Commit at most this often while running (always on revocation and shutdown).
    commit_interval: float = 0.2
    fetch_max_wait_ms: int = 50
    # The ingest and quarantine buckets: an upload may name only its own object in ingest.
    places: Places = DEFAULT_PLACES
    # Starts carry their tenant as the fairness key (Temporal's task queue fairness).
    fairness: bool = True
    # The start-up call to Temporal (the namespace's retention): each try's timeout, and how
    # long tries go on before the bridge stops with `TemporalUnanswered`.
    startup_call_timeout: float = 10.0
    startup_give_up_after: float = 30.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._bridge._release(list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._bridge._acquire(list(assigned))


class Bridge:
    """Consumes inbound topics and starts or signals workflows."""

    def __init__(
        self,
        client: Client,
        publisher: EventPublisher,
        bootstrap: str,
        config: BridgeConfig,
        metrics: BridgeMetrics | None = None,
        ledger: Ledger | None = None,
        ledger_unavailable: Transient | None = None,
    ) -> None:
        self.client = client
        self.bootstrap = bootstrap
        self.config = config
        self.metrics = metrics or BridgeMetrics()
        if ledger is not None and ledger_unavailable is not None:
            # A database outage is waited out, as Temporal's is (see `patience`).
            ledger = PatientLedger(ledger, Patience("postgres", ledger_unavailable, self.metrics))
        self.ledger = ledger
        self.consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        # Every topic's outcomes exist from the start, at zero: the first dead letter of a
        # bridge's life is an increase Prometheus sees (and alerts on), not a new series.
        for topic in config.topics:
            for outcome in Outcome:
                self.metrics.outcomes.labels(topic, outcome.value)
        self.flow: Flow[TopicPartition] = Flow(config.max_in_flight)
        self.records = RecordHandler(
            client,
            publisher,
            HandlingConfig(config.task_queues, config.group_id, config.places, config.fairness),
            self.metrics,
            ledger,
        )
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._key_tails: dict[tuple[TopicPartition, bytes | None], asyncio.Task[None]] = {}
        self._failure: BaseException | None = None
        self._paused = False
        self._finished = asyncio.Event()  # set whenever a record finishes
        self._last_commit = 0.0
        self._committing = asyncio.Lock()  # one commit at a time, in order
        self._committer: asyncio.Task[None] | None = None

    # -- the loop ----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish in-flight work, commit and leave the group."""
        if self.ledger is not None and self.records.retention is None:
            self.records.retention = await namespace_retention(
                self.client,
                call_timeout=self.config.startup_call_timeout,
                give_up_after=self.config.startup_give_up_after,
            )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.config.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.config.auto_offset_reset,
            isolation_level="read_committed",
            max_poll_records=self.config.max_in_flight,
            # A fetch sent while partitions were paused waits this long for data;
            # the partitions resumed meanwhile are only fetched after it returns.
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
        )
        self.consumer.subscribe(list(self.config.topics), listener=_Rebalance(self))
        await self.consumer.start()
        try:
            while not stop.is_set() and self._failure is None:
                room = self._room()
                if room >= self.flow.least_poll or (room > 0 and self.flow.idle()):
                    self._pause(False)
                    for tp, records in (await self._poll(room)).items():
                        for record in records:
                            self._dispatch(tp, record)
                else:  # full: wait for records to finish (or the next commit)
                    self._finished.clear()
                    try:
                        await asyncio.wait_for(self._finished.wait(), self.config.commit_interval)
                    except TimeoutError:
                        self._pause(True)  # nothing finished meanwhile: Temporal is slow or away
                if time.monotonic() - self._last_commit >= self.config.commit_interval:
                    self._commit_behind()
            await self._drain(self.config.shutdown_grace)
            try:
                # Bounded: during an outage the last commit is left to the next owner,
                # which replays the records after the last committed offset.
                await asyncio.wait_for(self._commit(), self.config.shutdown_grace)
            except TimeoutError:
                log.warning("stopping without the last commit: its dependency is away")
        finally:
            if self._committer is not None:
                await asyncio.gather(self._committer, return_exceptions=True)
            await self.consumer.stop()
        if self._failure is not None:
            raise self._failure

    async def _poll(self, room: int) -> dict[TopicPartition, list[Record]]:
        """Up to `room` records, shared among the partitions by their backlogs.

        aiokafka hands out all fetched records of one partition before the next
        one's. A backlog would be taken a partition at a time: the others would
        wait behind it, and the records of its few keys would wait for one
        another while Temporal has room. Shared by backlog, the partitions are
        drained together, with records of many keys at hand until the end. A
        partition whose records mostly wait behind their keys (one tenant's
        burst) gets none while that lasts: more of them would only wait too,
        and take the room of the other partitions' records.
        """
        assert self.consumer is not None
        backlogs = {
            tp: self.flow.backlog(tp, self.consumer.highwater(tp))
            for tp in self.consumer.assignment()
            if not self.flow.keys_busy(tp)
        }
        total, wanted = sum(backlogs.values()), room
        taken: dict[TopicPartition, list[Record]] = {}
        for tp in sorted(backlogs, key=backlogs.__getitem__, reverse=True):
            if room == 0 or backlogs[tp] == 0:
                break
            share = min(room, -(-wanted * backlogs[tp] // total))
            records = (await self.consumer.getmany(tp, max_records=share)).get(tp)
            if records:
                taken[tp] = records
                room -= len(records)
        if taken:
            return taken
        # Nothing fetched yet, or only busy partitions have records: whichever comes first.
        first: dict[TopicPartition, list[Record]] = await self.consumer.getmany(
            timeout_ms=100, max_records=room
        )
        return first

    def _dispatch(self, tp: TopicPartition, record: Record) -> None:
        """Start handling a record, after the previous record of the same key."""
        self.metrics.consumed.labels(tp.topic).inc()
        self.flow.progress(tp).add(record.offset)
        key = (tp, record.key)
        previous = self._key_tails.get(key)
        task = asyncio.create_task(self._handle_after(previous, tp, record))
        self._key_tails[key] = task
        self._tasks.setdefault(tp, set()).add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.get(tp, set()).discard(t)
            if self._key_tails.get(key) is t:
                del self._key_tails[key]

        task.add_done_callback(done)

    async def _handle_after(
        self, previous: asyncio.Task[None] | None, tp: TopicPartition, record: Record
    ) -> None:
        bind(topic=tp.topic, partition=tp.partition, offset=record.offset)
        if previous is not None:
            partition = self.flow.progress(tp)
            partition.waiting += 1  # behind its key: not in flight at Temporal yet
            try:
                await asyncio.wait([previous])
            finally:
                partition.waiting -= 1
            # If the record before this one of the same key did not finish, neither
            # may this one: it would overtake it.
            if previous.cancelled() or previous.exception() is not None:
                raise asyncio.CancelledError
        try:
            outcome = await self.handle(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not the record's fault (e.g. Kafka or Temporal gave up): stop the
            # bridge without committing past this record, so it is replayed.
            log.exception("bridge stops: %s/%s@%s failed", tp.topic, tp.partition, record.offset)
            self._failure = exc
            raise
        self.counts[outcome] += 1
        self.metrics.outcomes.labels(tp.topic, outcome.value).inc()
        if outcome is not Outcome.DEAD_LETTERED:
            self.metrics.ack_seconds.labels(tp.topic).observe(
                max(0.0, time.time() - record.timestamp / 1000)
            )
        progress = self.flow.partitions.get(tp)
        if progress is not None:
            progress.finish(record.offset)
        self._finished.set()

    def _room(self) -> int:
        """The room left for records (`Flow.room`), shown as the in-flight gauge."""
        room = self.flow.room()
        self.metrics.in_flight.set(self.flow.at_temporal)
        return room

    def _pause(self, paused: bool) -> None:
        """Pause the partitions (or resume them): backpressure while Temporal does not keep up.

        Only when full and no record has finished for `commit_interval`: a
        bridge under load is full between one record's reply and the next
        poll, and pausing and resuming every partition each time costs more
        than it spares.
        """
        assert self.consumer is not None
        if paused != self._paused:
            partitions = self.consumer.assignment()
            (self.consumer.pause if paused else self.consumer.resume)(*partitions)
            self._paused = paused
            self.metrics.paused.set(int(paused))

    def _commit_behind(self) -> None:
        """Commit in a task of its own, so the loop goes on handing out records meanwhile.

        A commit waits for the ledger and for Kafka; records arriving during it
        would otherwise wait too. One commit at a time: the next is due only
        after this one is done. A commit that fails stops the bridge, as it
        would inline.
        """
        if self._committer is not None and not self._committer.done():
            return
        self._committer = asyncio.create_task(self._commit())

        def failed(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                self._failure = self._failure or task.exception()
                self._finished.set()  # wake the loop, which stops

        self._committer.add_done_callback(failed)

    async def _commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        assert self.consumer is not None
        async with self._committing:
            self._last_commit = time.monotonic()
            started = time.perf_counter()
            # Offsets and events are taken together, with no await in between:
            # a record's event joins `_unmarked` before the record is finished,
            # so every event whose offset is committed here is marked here.
            offsets = self.flow.commit_points(partitions)
            unmarked = self.records.take_unmarked()
            if self.ledger is not None and unmarked:
                # The ledger learns of events before their offsets are committed: a
                # crash in between replays them, and Temporal still refuses the IDs.
                await self.ledger.mark_many(self.config.group_id, unmarked)
            if offsets:
                try:
                    # aiokafka retries a commit by itself while the coordinator is away.
                    await self.consumer.commit(offsets)
                except CommitFailedError as err:
                    # The group rebalanced meanwhile: the partitions' next owner replays
                    # the records after the last committed offset (duplicates, not loss).
                    log.warning("offsets not committed, the group rebalanced: %s", err)
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
        self._show_lag()

    def _show_lag(self) -> None:
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            lag = self.flow.lag(tp, self.consumer.highwater(tp))
            if lag is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    async def _drain(self, grace: float) -> None:
        """Let in-flight records finish for up to `grace` seconds; cancel the rest."""
        tasks = {t for ts in self._tasks.values() for t in ts}
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _release(self, revoked: list[TopicPartition]) -> None:
        """On revocation: commit what is finished, drop what is not (the next owner redoes it)."""
        self.ready.clear()
        if self.consumer is None:
            return
        await self._commit(revoked)
        for tp in revoked:
            tasks = self._tasks.pop(tp, set())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.flow.revoked(tp)
        self._paused = False

    async def _acquire(self, assigned: list[TopicPartition]) -> None:
        consumer = self.consumer
        if consumer is not None:
            for tp in assigned:
                self.flow.assigned(tp, await consumer.position(tp))
            if self._paused:
                consumer.pause(*assigned)
        self.ready.set()

    # -- one record ----------------------------------------------------------

    # -- one record ----------------------------------------------------------

    @property
    def retention(self) -> timedelta | None:
        """How long Temporal remembers closed workflows (known once the bridge runs)."""
        return self.records.retention

    async def handle(self, record: Record) -> Outcome:
        """Route one record (`RecordHandler.handle`); unroutable ones go to the DLQ."""
        return await self.records.handle(record)
