"""The Kafka → Temporal bridge: decode, route, start or signal, then commit.

Guarantees, and how:

- Nothing is lost. An offset is committed only over a contiguous run of
  records that Temporal acknowledged (or that went to the DLQ), so a crash
  replays records rather than skipping them.
- Nothing is acted on twice. Workflow IDs come from business keys, starts use
  a reuse policy that rejects duplicates and a conflict policy that uses the
  running workflow, and signals carry the event ID, which workflows remember.
- Order where it matters. Records with the same key (the tenant) are handled
  one after another; different keys run concurrently.
- Poison never blocks a partition: a record that can never be routed goes to
  the DLQ with its reason, and the partition moves on.
- Backpressure, not loss. The Temporal client retries unavailable-server
  errors on its own; while it does, records stay in flight, and once
  `max_in_flight` wait and none finishes, the bridge pauses its partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ferry.consumers.metrics import BridgeMetrics
from ferry.consumers.notifications import NotificationError, read
from ferry.consumers.routes import ROUTES, Action, Queue, Route
from ferry.contracts.layout import DEFAULT_PLACES, TENANT_SLUG, Places
from ferry.contracts.topics import DLQ, INBOUND_TOPICS, STORAGE_NOTIFICATIONS
from ferry.logs import bind
from ferry.producers import EventPublisher
from ferry.schemas import EventDecodeError, decode
from ferry.telemetry import consuming

log = logging.getLogger(__name__)


Record: TypeAlias = ConsumerRecord[bytes, bytes]
TENANT_CACHE_SECONDS = 60.0


class Outcome(StrEnum):
    STARTED = "started"
    SIGNALLED = "signalled"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead-lettered"


class Rejected(Exception):
    """A record that can never be processed as it is: it goes to the DLQ."""


def header(record: Record, name: str) -> str | None:
    for key, value in record.headers or ():
        if key.lower() == name:
            return bytes(value).decode("utf-8", errors="replace")
    return None


class Ledger(Protocol):
    """Known tenants and processed events (the database's `EventLedger`)."""

    async def existing_tenants(self, tenant_ids: Collection[str]) -> set[str]: ...

    async def processed(self, tenant_id: str, consumer: str, event_id: str) -> bool: ...

    async def mark_many(self, consumer: str, events: Sequence[tuple[str, str, str]]) -> None: ...


class TenantDirectory:
    """Which tenants exist, remembered for a while and asked in batches.

    The records of one poll are dispatched together; the tenants none of them
    has seen lately are looked up in one query, not one per record. A tenant
    found missing is asked again next time (it may have been created since).
    """

    def __init__(
        self,
        lookup: Callable[[Collection[str]], Awaitable[set[str]]],
        remember_seconds: float = TENANT_CACHE_SECONDS,
    ) -> None:
        self._lookup = lookup
        self._remember = remember_seconds
        self._seen: dict[str, float] = {}
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._batch: asyncio.Task[None] | None = None

    async def exists(self, tenant: str) -> bool:
        seen = self._seen.get(tenant)
        if seen is not None and time.monotonic() - seen < self._remember:
            return True
        answer = self._pending.get(tenant)
        if answer is None:
            answer = self._pending[tenant] = asyncio.get_running_loop().create_future()
            if self._batch is None:
                # Runs after the records dispatched with this one have asked too.
                self._batch = asyncio.create_task(self._ask())
        # Shielded: a record cancelled while waiting must not cancel the others' answer.
        return await asyncio.shield(answer)

    async def _ask(self) -> None:
        pending, self._pending, self._batch = self._pending, {}, None
        try:
            existing = await self._lookup(list(pending))
        except Exception as exc:  # every record waiting fails with it
            for answer in pending.values():
                answer.set_exception(exc)
            return
        now = time.monotonic()
        for tenant, answer in pending.items():
            if tenant in existing:
                self._seen[tenant] = now
            answer.set_result(tenant in existing)


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


class _PartitionProgress:
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
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.publisher = publisher
        self.bootstrap = bootstrap
        self.config = config
        self.metrics = metrics or BridgeMetrics()
        self.consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self._progress: dict[TopicPartition, _PartitionProgress] = {}
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._key_tails: dict[tuple[TopicPartition, bytes | None], asyncio.Task[None]] = {}
        self._failure: BaseException | None = None
        self._paused = False
        self._finished = asyncio.Event()  # set whenever a record finishes
        self._last_commit = 0.0
        self._committing = asyncio.Lock()  # one commit at a time, in order
        self._committer: asyncio.Task[None] | None = None
        self.tenants = TenantDirectory(ledger.existing_tenants) if ledger is not None else None
        self._unmarked: list[tuple[str, str, str]] = []
        # The namespace's retention, once known (see `_older_than_temporal_remembers`).
        self.retention: timedelta | None = None

    # -- the loop ----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish in-flight work, commit and leave the group."""
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
        if self.ledger is not None and self.retention is None:
            self.retention = await namespace_retention(self.client)
        self.consumer.subscribe(list(self.config.topics), listener=_Rebalance(self))
        await self.consumer.start()
        try:
            while not stop.is_set() and self._failure is None:
                room = self._room()
                if room >= self._least_poll or (room > 0 and self._idle()):
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
            await self._commit()
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
            tp: self._backlog(tp)
            for tp in self.consumer.assignment()
            if tp not in self._progress or not self._progress[tp].keys_busy
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

    def _backlog(self, tp: TopicPartition) -> int:
        """Records of `tp` not handed out yet, as of the last fetch.

        0 before a fetch of `tp` has returned (no record of it can be at hand
        then); 1 if its position is not known, so that it is asked.
        """
        assert self.consumer is not None
        highwater = self.consumer.highwater(tp)
        if highwater is None:
            return 0
        progress = self._progress.get(tp)
        if progress is None or progress.next_offset is None:
            return 1
        return max(0, int(highwater) - progress.next_offset)

    def _dispatch(self, tp: TopicPartition, record: Record) -> None:
        """Start handling a record, after the previous record of the same key."""
        self.metrics.consumed.labels(tp.topic).inc()
        progress = self._progress.setdefault(tp, _PartitionProgress())
        progress.add(record.offset)
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
            partition = self._progress[tp]
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
        progress = self._progress.get(tp)
        if progress is not None:
            progress.finish(record.offset)
        self._finished.set()

    def _room(self) -> int:
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
        waiting = sum(p.waiting for p in self._progress.values())
        in_flight = sum(p.unfinished for p in self._progress.values()) - waiting
        uncommitted = sum(p.uncommitted for p in self._progress.values())
        self.metrics.in_flight.set(in_flight)
        most = self.config.max_in_flight
        return min(most - in_flight, 2 * most - waiting, 4 * most - uncommitted)

    @property
    def _least_poll(self) -> int:
        """Under load, the loop polls once this much room is free, not for every record."""
        return max(1, self.config.max_in_flight // 16)

    def _idle(self) -> bool:
        """Whether no record is in flight: whatever room there is, is all there will be."""
        return all(p.unfinished == 0 for p in self._progress.values())

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
            offsets = self._commit_points(partitions)
            unmarked, self._unmarked = self._unmarked, []
            if self.ledger is not None and unmarked:
                # The ledger learns of events before their offsets are committed: a
                # crash in between replays them, and Temporal still refuses the IDs.
                await self.ledger.mark_many(self.config.group_id, unmarked)
            if offsets:
                await self.consumer.commit(offsets)
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
        self._show_lag()

    def _commit_points(
        self, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, int]:
        """Per partition, one past the contiguous run of finished records not committed yet."""
        offsets = {}
        for tp in list(partitions if partitions is not None else self._progress):
            progress = self._progress.get(tp)
            point = progress.commit_point() if progress else None
            if point is not None and progress is not None:
                offsets[tp] = point
                progress.committed = point
        return offsets

    def _show_lag(self) -> None:
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            progress = self._progress.get(tp)
            if highwater is not None and progress is not None and progress.committed is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(
                    highwater - progress.committed
                )

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
            self._progress.pop(tp, None)
        self._paused = False

    async def _acquire(self, assigned: list[TopicPartition]) -> None:
        consumer = self.consumer
        if consumer is not None:
            for tp in assigned:
                # Where the partition starts: its backlog is known from the first fetch on.
                progress = self._progress.setdefault(tp, _PartitionProgress())
                progress.next_offset = await consumer.position(tp)
            if self._paused:
                consumer.pause(*assigned)
        self.ready.set()

    # -- one record ----------------------------------------------------------

    async def handle(self, record: Record) -> Outcome:
        """Route one record, in the trace its headers carry; unroutable ones go to the DLQ."""
        with consuming(record.topic, record.headers):
            return await self._handle(record)

    async def _handle(self, record: Record) -> Outcome:
        try:
            if record.topic == STORAGE_NOTIFICATIONS:
                return await self._notification(record)
            event = self._decode(record)
            route = ROUTES.get(event["event_type"])
            if route is None:
                raise Rejected(f"no route for event type {event['event_type']!r}")
            if not TENANT_SLUG.fullmatch(event["tenant_id"]):
                raise Rejected(f"tenant_id {event['tenant_id']!r} is not a tenant slug")
            missing = [name for name in route.required if event.get(name) is None]
            if missing:
                raise Rejected(f"{event['event_type']} without {', '.join(missing)}")
            problem = route.refusal(event, self.config.places)
            if problem:
                raise Rejected(problem)
            return await self._checked_delivery(route, event, record)
        except Rejected as rejected:
            await self._dead_letter(record, str(rejected))
            return Outcome.DEAD_LETTERED

    async def _notification(self, record: Record) -> Outcome:
        """A bucket notification: each committed object is a `file.uploaded`.

        The uploads whose objects are not theirs to take are refused; the others
        go on, and the record then goes to the DLQ with the refusals (replayed,
        the uploads already started are duplicates).
        """
        try:
            notification = read(record.value or b"", record.headers)
        except NotificationError as exc:
            raise Rejected(f"NotificationError: {exc}") from exc
        for kind in notification.skipped:
            self.metrics.notifications_skipped.labels(kind).inc()
        if not notification.uploads:
            return Outcome.SKIPPED  # a test event, a deletion, an uncommitted block
        route = ROUTES["file.uploaded"]
        outcomes, refused = [], []
        for upload in notification.uploads:
            problem = route.refusal(upload.event, self.config.places)
            if problem:
                storage = upload.event["storage"]
                refused.append(f"{storage['bucket']}/{storage['key']}: {problem}")
                continue
            outcomes.append(await self._checked_delivery(route, upload.event, record))
        if refused:
            raise Rejected("; ".join(refused))
        return Outcome.STARTED if Outcome.STARTED in outcomes else Outcome.DUPLICATE

    async def _checked_delivery(
        self, route: Route, event: dict[str, Any], record: Record | None = None
    ) -> Outcome:
        """Deliver unless the tenant is unknown (DLQ) or the ledger has the event (duplicate)."""
        if self.ledger is None or self.tenants is None:
            return await self._deliver(route, event)
        tenant, event_id = event["tenant_id"], event["event_id"]
        bind(tenant_id=tenant, event_id=event_id, workflow_id=route.workflow_id(event))
        if route.tenant_must_exist and not await self.tenants.exists(tenant):
            raise Rejected(f"unknown tenant {tenant!r}")
        if self._older_than_temporal_remembers(event, record) and await self.ledger.processed(
            tenant, self.config.group_id, event_id
        ):
            return Outcome.DUPLICATE
        outcome = await self._deliver(route, event)
        # Written in bulk just before the next offset commit (see `_commit`).
        self._unmarked.append((tenant, event_id, event["event_type"]))
        return outcome

    def _older_than_temporal_remembers(self, event: dict[str, Any], record: Record | None) -> bool:
        """Whether Temporal may have forgotten a workflow this event started.

        A run started from an event closed after the event happened, and Temporal
        refuses its ID for `retention` after closing; only events older than half
        the retention (the earlier of record and event time) need the ledger.
        """
        if self.retention is None:
            return True
        stamps: list[float] = [event["occurred_at"].timestamp()]
        if record is not None:
            stamps.append(record.timestamp / 1000)
        return time.time() - min(stamps) > self.retention.total_seconds() / 2

    def _decode(self, record: Record) -> dict[str, Any]:
        if record.value is None:
            raise Rejected("empty record value")
        try:
            return decode(record.value, header(record, "content-type"))
        except EventDecodeError as exc:
            raise Rejected(f"{type(exc).__name__}: {exc}") from exc

    async def _deliver(self, route: Route, event: dict[str, Any]) -> Outcome:
        if route.action is Action.SIGNAL:
            assert route.signal is not None
            workflow_id = route.workflow_id(event)
            handle = self.client.get_workflow_handle(workflow_id)
            try:
                await handle.signal(route.signal, route.to_input(event))
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    raise Rejected(f"no running workflow {workflow_id} for this event") from err
                raise
            return Outcome.SIGNALLED
        try:
            handle = await route.start(self.client, event, self.config.task_queues[route.queue])
        except WorkflowAlreadyStartedError:
            # The run of this business key existed and closed: this event is done.
            return Outcome.DUPLICATE
        # With USE_EXISTING, a start of a running ID succeeds without starting;
        # the server's response says which (the SDK keeps it on the handle).
        response = getattr(handle, "_start_workflow_response", None)
        return Outcome.STARTED if getattr(response, "started", True) else Outcome.DUPLICATE

    async def _dead_letter(self, record: Record, reason: str) -> None:
        where = f"{record.topic}/{record.partition}@{record.offset}"
        log.warning("dead-lettering %s: %s", where, reason)
        headers = list(record.headers or ())
        headers += [
            ("ferry-error", reason.encode()),
            ("ferry-source-topic", record.topic.encode()),
            ("ferry-source-partition", str(record.partition).encode()),
            ("ferry-source-offset", str(record.offset).encode()),
            ("ferry-failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        await self.publisher.send_raw(DLQ, record.value, record.key, headers)


async def namespace_retention(client: Client) -> timedelta | None:
    """How long Temporal keeps closed workflows (and so refuses their IDs)."""
    response = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace)
    )
    ttl = response.config.workflow_execution_retention_ttl
    return (
        ttl.ToTimedelta() if response.config.HasField("workflow_execution_retention_ttl") else None
    )
