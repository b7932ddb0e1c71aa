"""One record at a time: decode, check, route, deduplicate, start or signal, or dead-letter.

The bridge (`ferry.consumers.bridge`) owns the flow: which records are handed
out, in what order, and what is committed. A `RecordHandler` decides what
becomes of each record it is handed, and says so as an `Outcome`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeAlias

from aiokafka import ConsumerRecord
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeNamespaceResponse,
)
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ferry.consumers.metrics import BridgeMetrics
from ferry.consumers.notifications import NotificationError, read
from ferry.consumers.patience import Patience, bounded, kafka_unavailable
from ferry.consumers.routes import ROUTES, Action, Queue, Route
from ferry.contracts.layout import DEFAULT_PLACES, TENANT_SLUG, Places
from ferry.contracts.topics import DLQ, STORAGE_NOTIFICATIONS
from ferry.logs import bind
from ferry.producers import EventPublisher
from ferry.schemas import EventDecodeError, decode
from ferry.telemetry import consuming

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]
TENANT_CACHE_SECONDS = 60.0
# How many delivered events a bridge remembers, so that a repeated signal whose workflow
# closed in between is a duplicate even before the ledger has the first delivery.
RECENT_EVENTS = 10_000


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
class HandlingConfig:
    """What record handling needs to know of the bridge's settings."""

    task_queues: Mapping[Queue, str]
    group_id: str
    places: Places = DEFAULT_PLACES
    # Starts carry their tenant as the fairness key.
    fairness: bool = True


class RecordHandler:
    """Decides what becomes of one record: a workflow started or signalled, a duplicate, a
    skip, or a dead letter with its reason."""

    def __init__(
        self,
        client: Client,
        publisher: EventPublisher,
        config: HandlingConfig,
        metrics: BridgeMetrics,
        ledger: Ledger | None = None,
        kafka: Patience | None = None,
    ) -> None:
        self.client = client
        # Dead letters wait out a Kafka outage rather than stop the bridge.
        self.kafka = kafka or Patience("kafka", kafka_unavailable, metrics)
        self.publisher = publisher
        self.config = config
        self.metrics = metrics
        self.ledger = ledger
        self.tenants = TenantDirectory(ledger.existing_tenants) if ledger is not None else None
        # Events delivered since the last commit, for the ledger (see `take_unmarked`).
        self._unmarked: list[tuple[str, str, str]] = []
        # The events this bridge delivered lately, in order (see `_handled`).
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        # The namespace's retention, once known (see `_older_than_temporal_remembers`).
        self.retention: timedelta | None = None

    def take_unmarked(self) -> list[tuple[str, str, str]]:
        """The events delivered since the last call: the ledger marks them before a commit."""
        unmarked, self._unmarked = self._unmarked, []
        return unmarked

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
        try:
            outcome = await self._deliver(route, event)
        except Rejected:
            # A signal whose workflow has closed since it took this very event (a
            # repeat delivered after the first one ended the run) is a duplicate,
            # not a dead letter: the first delivery is in the ledger, or on its way.
            if route.action is Action.SIGNAL and await self._handled(tenant, event_id):
                return Outcome.DUPLICATE
            raise
        # Written in bulk just before the next offset commit (see `_commit`).
        self._unmarked.append((tenant, event_id, event["event_type"]))
        self._recent[(tenant, event_id)] = None
        while len(self._recent) > RECENT_EVENTS:
            self._recent.popitem(last=False)
        return outcome

    async def _handled(self, tenant: str, event_id: str) -> bool:
        """Whether this bridge's group has delivered the event already: lately by this
        bridge (the ledger may not have it yet), or ever (the ledger)."""
        if (tenant, event_id) in self._recent:
            return True
        assert self.ledger is not None
        return await self.ledger.processed(tenant, self.config.group_id, event_id)

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
            queue = self.config.task_queues[route.queue]
            await route.start(self.client, event, queue, fair=self.config.fairness)
        except WorkflowAlreadyStartedError:
            # The run of this business key is running, or existed and closed: this
            # event is done.
            return Outcome.DUPLICATE
        return Outcome.STARTED

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
        await self.kafka.call(self.publisher.send_raw, DLQ, record.value, record.key, headers)


class TemporalUnanswered(RuntimeError):
    """Temporal did not answer a start-up call in the time it is given."""


def unanswered(exc: BaseException) -> bool:
    """A call Temporal did not answer in time, or could not take: the client reports its own
    call timeout as CANCELLED ("Timeout expired"), a server that gave up as DEADLINE_EXCEEDED."""
    return isinstance(exc, RPCError) and exc.status in (
        RPCStatusCode.CANCELLED,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    )


async def namespace_retention(
    client: Client, *, call_timeout: float, give_up_after: float
) -> timedelta | None:
    """How long Temporal keeps closed workflows (and so refuses their IDs).

    Asked once, at start-up: each try has `call_timeout` seconds, and tries go on for
    `give_up_after` seconds (`bounded`), then `TemporalUnanswered`. Without a timeout of
    its own the call would wait for the client's default (30 s) and fail on the first
    timeout.
    """
    request = DescribeNamespaceRequest(namespace=client.namespace)

    async def describe() -> DescribeNamespaceResponse:
        return await client.workflow_service.describe_namespace(
            request, timeout=timedelta(seconds=call_timeout)
        )

    try:
        response = await bounded("describe_namespace", describe, unanswered, give_up_after)
    except RPCError as err:
        if not unanswered(err):
            raise
        address = client.service_client.config.target_host
        raise TemporalUnanswered(
            f"Temporal at {address} did not answer describe_namespace of {client.namespace!r}"
            f" in {give_up_after:.0f}s ({call_timeout:.0f}s a try): {err}"
        ) from err
    ttl = response.config.workflow_execution_retention_ttl
    return (
        ttl.ToTimedelta() if response.config.HasField("workflow_execution_retention_ttl") else None
    )
