"""The chaos run's outside checker: it reads only what a user of Ferry can read (the
outbound topics and the DLQ, Temporal's visibility, the database through its
repositories, the buckets) and holds it against what was sent."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from chaos_faults import Fault
from chaos_traffic import Sent
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus

from ferry.consumers.offsets import committed_offsets
from ferry.consumers.tail import decode_record
from ferry.db import tenant_scope
from ferry.meter.app import topic_partitions
from ferry.storage import StorageProvider

OUTCOMES = ("file.processed", "file.rejected")
FINISHING = ("upload", "tenant", "upgrade", "migration")


@dataclass
class Seen:
    """A record read from an outbound topic or the DLQ, with when it was read."""

    topic: str
    event: dict[str, Any] | None
    value: bytes | None
    headers: dict[str, str]
    arrived: float

    @property
    def event_id(self) -> str | None:
        return None if self.event is None else str(self.event.get("event_id"))


async def partitions_of(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in range(await topic_partitions(bootstrap, topic))
    ]


class Collector:
    """Reads topics from where they ended when the run began, for the whole run."""

    def __init__(self, bootstrap: str, topics: list[str], started: float) -> None:
        self.bootstrap = bootstrap
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self.topics = topics
        self.started = started
        self.seen: list[Seen] = []

    async def start(self) -> None:
        await self.consumer.start()
        partitions = await partitions_of(self.bootstrap, self.topics)
        self.consumer.assign(partitions)
        ends = await self.consumer.end_offsets(partitions)
        for tp in partitions:
            self.consumer.seek(tp, ends[tp])

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=200)
            now = round(time.monotonic() - self.started, 2)
            for tp, records in batches.items():
                for record in records:
                    headers = {k: bytes(v).decode(errors="replace") for k, v in record.headers}
                    try:
                        event = decode_record(record.value, record.headers)
                    except Exception:
                        event = None
                    self.seen.append(Seen(tp.topic, event, record.value, headers, now))

    async def stop(self) -> None:
        await self.consumer.stop()

    def events(self, topic: str) -> list[Seen]:
        return [s for s in self.seen if s.topic == topic and s.event is not None]


@dataclass
class Report:
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    recovery: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)


def outcomes_by_file(collector: Collector) -> dict[str, list[Seen]]:
    found: dict[str, list[Seen]] = defaultdict(list)
    for seen in collector.events("ferry.file-events.v1"):
        assert seen.event is not None
        if seen.event["event_type"] in OUTCOMES:
            found[str(seen.event["file_id"])].append(seen)
    return found


def settled(sent: list[Sent], collector: Collector) -> bool:
    """Whether every upload has its outcome and every tenant, upgrade and migration its end."""
    files = outcomes_by_file(collector)
    for s in sent:
        if s.kind.startswith("upload-") and s.expect != "dlq" and s.extra["file_id"] not in files:
            return False
    tenant_events = collector.events("ferry.tenant-events.v1")
    ended = {(e.event or {}).get("upgrade_id") for e in tenant_events}
    provisioned = {
        (e.event or {}).get("tenant_id")
        for e in tenant_events
        if (e.event or {}).get("event_type", "").startswith("tenant.provision")
    }
    for s in sent:
        if s.kind == "upgrade" and s.event and s.event["upgrade_id"] not in ended:
            return False
        if s.kind == "tenant" and s.tenant not in provisioned:
            return False
    migrations = {
        (e.event or {}).get("migration_id")
        for e in collector.events("ferry.file-events.v1")
        if (e.event or {}).get("event_type", "").startswith("file.migration")
    }
    return all(
        s.event is not None and s.event["migration_id"] in migrations
        for s in sent
        if s.kind == "migration"
    )


def should_finish(sent: list[Sent]) -> set[str]:
    """The runs that end by themselves once quiet: uploads, tenants, upgrades, migrations,
    and the shares that were revoked."""
    revoked = {s.workflow_id for s in sent if s.kind == "revocation"}
    return {
        s.workflow_id
        for s in sent
        if s.workflow_id
        and s.expect != "dlq"
        and (s.kind.split("-")[0] in FINISHING or s.workflow_id in revoked)
    }


async def unfinished(client: Client, sent: list[Sent]) -> list[str]:
    """The runs that should have finished and are still running."""
    should = should_finish(sent)
    tenants = sorted({s.tenant for s in sent if s.kind == "tenant"})
    running = []
    for tenant in tenants:
        query = f'TenantId = "{tenant}" AND ExecutionStatus = "Running"'
        async for wf in client.list_workflows(query):
            if wf.id in should:
                running.append(wf.id)
    return running


async def lags(bootstrap: str, groups: dict[str, list[str]]) -> dict[str, int]:
    """How many records each consumer group has yet to commit."""
    behind = {}
    for group, topics in groups.items():
        partitions = await partitions_of(bootstrap, topics)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
        committed = await committed_offsets(bootstrap, group)
        behind[group] = sum(max(0, ends[tp] - committed.get(tp, ends[tp])) for tp in partitions)
    return behind


async def quiet(
    sent: list[Sent],
    collector: Collector,
    client: Client,
    bootstrap: str,
    groups: dict[str, list[str]],
) -> bool:
    """Settled, and nothing left to do: no run that should end still running, every
    consumer group caught up."""
    if not settled(sent, collector):
        return False
    if await unfinished(client, sent):
        return False
    return not any((await lags(bootstrap, groups)).values())


async def runs_of(client: Client, tenants: list[str]) -> dict[str, list[WorkflowExecutionStatus]]:
    runs: dict[str, list[WorkflowExecutionStatus]] = defaultdict(list)
    for tenant in tenants:
        async for wf in client.list_workflows(f'TenantId = "{tenant}"'):
            runs[wf.id].append(wf.status or WorkflowExecutionStatus.RUNNING)
    return runs


async def check(
    sent: list[Sent],
    collector: Collector,
    client: Client,
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: dict[str, StorageProvider],
    bootstrap: str,
    groups: dict[str, list[str]],
    faults: list[Fault],
    quarantine_bucket: str,
) -> Report:
    report = Report()
    tenants = sorted({s.tenant for s in sent if s.kind == "tenant"})
    runs = await runs_of(client, tenants)
    await check_runs(sent, runs, report)
    await check_uploads(sent, collector, sessionmaker, storage, quarantine_bucket, report)
    check_dead_letters(sent, collector, report)
    await check_upgrades(sent, collector, sessionmaker, report)
    check_shares(sent, collector, report)
    await check_isolation(sent, sessionmaker, tenants, report)
    await check_lag(bootstrap, groups, report)
    check_recovery(collector, faults, report)
    return report


async def check_runs(
    sent: list[Sent], runs: dict[str, list[WorkflowExecutionStatus]], report: Report
) -> None:
    """Every accepted event: exactly one run of its contract ID, finished if it should be."""
    expected = {
        s.workflow_id: s
        for s in sent
        if s.workflow_id and s.expect != "dlq" and not s.kind.startswith(("payment", "revocation"))
    }
    finishing = should_finish(sent)
    missing = duplicated = stuck = failed = 0
    for workflow_id, s in expected.items():
        statuses = runs.get(workflow_id, [])
        if not statuses:
            missing += 1
            report.problem(f"no run of {workflow_id} ({s.kind})")
            continue
        if len(statuses) > 1:
            duplicated += 1
            report.problem(f"{len(statuses)} runs of {workflow_id}")
        status = statuses[-1]
        if workflow_id in finishing and status == WorkflowExecutionStatus.RUNNING:
            stuck += 1
            report.problem(f"{workflow_id} ({s.kind}) still running")
        elif status not in (WorkflowExecutionStatus.COMPLETED, WorkflowExecutionStatus.RUNNING):
            failed += 1
            report.problem(f"{workflow_id} ended {status.name}")
    report.counts.update(
        workflows_expected=len(expected),
        workflows_missing=missing,
        workflows_duplicated=duplicated,
        workflows_stuck=stuck,
        workflows_failed=failed,
    )


async def check_uploads(
    sent: list[Sent],
    collector: Collector,
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: dict[str, StorageProvider],
    quarantine_bucket: str,
    report: Report,
) -> None:
    """One outcome event ID per upload, the expected one; the file where it belongs."""
    files = outcomes_by_file(collector)
    uploads = [s for s in sent if s.kind.startswith("upload-") and s.expect != "dlq"]
    lost = duplicated = redelivered = wrong = misplaced = 0
    for s in uploads:
        file_id = s.extra["file_id"]
        seen = files.get(file_id, [])
        ids = Counter(x.event_id for x in seen)
        if not ids:
            lost += 1
            report.problem(f"no outcome for {s.kind} {file_id}")
            continue
        if len(ids) > 1:
            duplicated += 1
            report.problem(f"{len(ids)} outcome IDs for {file_id}")
        redelivered += sum(n - 1 for n in ids.values())
        outcome = seen[0].event or {}
        got = (
            "processed"
            if outcome["event_type"] == "file.processed"
            else f"rejected:{outcome.get('reason')}"
        )
        if got != s.expect:
            wrong += 1
            report.problem(f"{s.kind} {file_id}: {got} ({outcome.get('detail')}), not {s.expect}")
        if not await placed_right(s, got, sessionmaker, storage, quarantine_bucket):
            misplaced += 1
            report.problem(f"{s.kind} {file_id} ({got}) is not where it belongs")
    report.counts.update(
        uploads=len(uploads),
        outcomes_lost=lost,
        outcomes_duplicated=duplicated,
        outcomes_redelivered=redelivered,
        outcomes_unexpected=wrong,
        files_misplaced=misplaced,
    )


async def placed_right(
    s: Sent,
    got: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: dict[str, StorageProvider],
    quarantine_bucket: str,
) -> bool:
    """A clean file in its tenant's bucket (where the database says), a rejected one only
    in quarantine."""
    file_id = s.extra["file_id"]
    async with tenant_scope(sessionmaker, s.tenant) as db:
        row = await db.files.get(file_id)
    if row is None:
        return False
    if got == "processed":
        where = storage[row.storage_provider]
        return row.storage_bucket == f"ferry-{s.tenant}" and await exists(
            where, row.storage_bucket, row.storage_key
        )
    for provider in storage.values():
        if await exists(provider, f"ferry-{s.tenant}", f"files/{file_id}/original"):
            return False
    quarantined = f"quarantine/{s.tenant}/{file_id}"
    return any([await exists(p, quarantine_bucket, quarantined) for p in storage.values()])


async def exists(provider: StorageProvider, bucket: str, key: str) -> bool:
    """Whether the object is there (a bucket the provider does not have holds nothing)."""
    try:
        return await provider.head(bucket, key) is not None
    except Exception:
        return False


def check_dead_letters(sent: list[Sent], collector: Collector, report: Report) -> None:
    """Every poison record in the DLQ with its reason, and nothing else there."""
    letters = [s for s in collector.seen if s.topic == "ferry.dlq.v1"]
    expected = [s for s in sent if s.expect == "dlq"]
    by_event = {s.event["event_id"]: s for s in expected if s.event is not None}
    by_value = {s.raw: s for s in expected if s.raw is not None}
    # A payment that contradicts the one that decided (refused, then paid) and arrives
    # after its upgrade ended is refused to the billing system in the DLQ.
    late = {
        s.event["event_id"]
        for s in sent
        if s.kind == "payment-contradicted" and s.event and not s.extra["decides"]
    }
    found: set[int] = set()
    unexpected = late_payments = 0
    for letter in letters:
        match = by_event.get(letter.event_id or "") or by_value.get(letter.value or b"")
        reason = letter.headers.get("ferry-error", "")
        if match is None and letter.event_id in late and "no running workflow" in reason:
            late_payments += 1
            continue
        if match is None:
            unexpected += 1
            report.problem(f"unexpected dead letter: {letter.headers.get('ferry-error')}")
            continue
        found.add(id(match))
        wanted = match.extra.get("reason")
        if wanted and wanted not in reason:
            report.problem(f"{match.kind}: reason {letter.headers.get('ferry-error')!r}")
    missing = [s for s in expected if id(s) not in found]
    for s in missing:
        report.problem(f"{s.kind} not in the DLQ")
    report.counts.update(
        dead_letters_expected=len(expected),
        dead_letters_missing=len(missing),
        dead_letters_unexpected=unexpected,
        dead_letters_late_payments=late_payments,
    )


async def check_upgrades(
    sent: list[Sent],
    collector: Collector,
    sessionmaker: async_sessionmaker[AsyncSession],
    report: Report,
) -> None:
    """Each upgrade decided once, by its first payment; the plan follows; a failed
    upgrade that was paid for is refunded."""
    ends: dict[str, set[str]] = defaultdict(set)
    outcome: dict[str, str] = {}
    for seen in collector.events("ferry.tenant-events.v1"):
        event = seen.event or {}
        if event["event_type"] in ("tenant.upgraded", "tenant.upgrade_failed"):
            ends[event["upgrade_id"]].add(str(event["event_id"]))
            outcome[event["upgrade_id"]] = event["event_type"]
    refunds = {
        (s.event or {}).get("upgrade_id")
        for s in collector.events("ferry.billing-commands.v1")
        if (s.event or {}).get("event_type") == "billing.refund_requested"
    }
    deciders = {
        s.event["upgrade_id"]: s
        for s in sent
        if s.kind.startswith("payment") and s.event and s.extra["decides"]
    }
    wrong = 0
    for s in sent:
        if s.kind != "upgrade" or s.event is None:
            continue
        upgrade_id = s.event["upgrade_id"]
        if len(ends[upgrade_id]) != 1:
            wrong += 1
            report.problem(f"upgrade {upgrade_id}: {len(ends[upgrade_id])} outcome IDs")
            continue
        decider = deciders.get(upgrade_id)
        should = "tenant.upgraded" if decider and decider.extra["succeeded"] else None
        async with tenant_scope(sessionmaker, s.tenant) as db:
            tenant = await db.tenants.require()
        upgraded = outcome[upgrade_id] == "tenant.upgraded"
        if should and not upgraded and upgrade_id not in refunds:
            wrong += 1
            report.problem(f"upgrade {upgrade_id} paid, failed, and not refunded")
        if decider and not decider.extra["succeeded"] and upgraded:
            wrong += 1
            report.problem(f"upgrade {upgrade_id} upgraded on a refused payment")
        if str(tenant.plan) != ("pro" if upgraded else "free"):
            wrong += 1
            report.problem(f"{s.tenant} on {tenant.plan} after {outcome[upgrade_id]}")
    report.counts.update(upgrades=sum(s.kind == "upgrade" for s in sent), upgrades_wrong=wrong)


def check_shares(sent: list[Sent], collector: Collector, report: Report) -> None:
    shared = Counter[str]()
    revoked = Counter[str]()
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for seen in collector.events("ferry.file-events.v1"):
        event = seen.event or {}
        if event["event_type"] in ("file.shared", "file.share_revoked"):
            ids[(event["event_type"], event["share_id"])].add(str(event["event_id"]))
    for (kind, share_id), events in ids.items():
        (shared if kind == "file.shared" else revoked)[share_id] = len(events)
    wrong = 0
    for s in sent:
        if s.kind in ("share", "revocation") and s.event:
            share_id = s.event["share_id"]
            count = (shared if s.kind == "share" else revoked)[share_id]
            if count != 1:
                wrong += 1
                report.problem(f"{s.kind} {share_id}: {count} events")
    report.counts.update(shares=sum(s.kind == "share" for s in sent), shares_wrong=wrong)


async def check_isolation(
    sent: list[Sent],
    sessionmaker: async_sessionmaker[AsyncSession],
    tenants: list[str],
    report: Report,
) -> None:
    """No tenant's scope shows another tenant's file."""
    files: dict[str, list[str]] = defaultdict(list)
    for s in sent:
        if s.kind.startswith("upload-") and s.expect != "dlq":
            files[s.tenant].append(s.extra["file_id"])
    leaks = probes = 0
    for tenant in tenants:
        async with tenant_scope(sessionmaker, tenant) as db:
            for other, theirs in files.items():
                if other == tenant:
                    continue
                for file_id in theirs[:5]:
                    probes += 1
                    if await db.files.get(file_id) is not None:
                        leaks += 1
                        report.problem(f"{tenant} sees {other}'s file {file_id}")
    report.counts.update(isolation_probes=probes, isolation_leaks=leaks)


async def check_lag(bootstrap: str, groups: dict[str, list[str]], report: Report) -> None:
    for group, lag in (await lags(bootstrap, groups)).items():
        report.counts[f"lag_{group.rsplit('-', 1)[-1]}"] = lag
        if lag:
            report.problem(f"consumer group {group} is {lag} records behind")


def check_recovery(collector: Collector, faults: list[Fault], report: Report) -> None:
    """Per fault: from its injection to the first upload outcome read after its service
    (or process) was back (`recovered_after`, the outage included), and from the
    service's return to that outcome (`after_restore`)."""
    arrivals = sorted(
        s.arrived
        for s in collector.events("ferry.file-events.v1")
        if (s.event or {}).get("event_type") in OUTCOMES
    )
    for fault in faults:
        back = fault.restored if fault.restored is not None else fault.at
        after = next((t for t in arrivals if t >= back), None)
        report.recovery.append(
            {
                "kind": fault.kind,
                "target": fault.target,
                "at": fault.at,
                "restored": fault.restored,
                "recovered_after": None if after is None else round(after - fault.at, 2),
                "after_restore": None if after is None else round(after - back, 2),
            }
        )
