"""Chaos run: Ferry under many faults at once, checked from the outside.

On the local stack, two bridges (one consumer group) and two workers, and the meter,
take a steady mix of traffic (`chaos_traffic`): uploads clean and hostile, some
announced twice, some by S3's own notification; tenants created and upgraded, paid
for (payments repeated or contradicting); shares and revocations; a migration;
poison records. Meanwhile the nemesis (`chaos_faults`) kills a bridge, a worker and
the meter, kills Kafka and Temporal, stops Postgres in immediate mode, stops clamd
and a storage emulator for a while, each restarted with the stack's own commands.

When the traffic stops and the system is quiet again, the checker (`chaos_check`)
reads what a user can read and counts what was lost, duplicated, dead-lettered
unexpectedly, or is stuck. Prints a table, writes JSON under bench/results/, and
exits 1 if any guarantee was broken. Run: `make chaos` (10 minutes), or
`python bench/chaos.py --duration 90 --faults 6` for a short run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chaos_check import Collector, Report, check, quiet
from chaos_faults import Nemesis, Proc, schedule
from chaos_traffic import Traffic
from rich.console import Console
from rich.table import Table

from ferry.config import Settings, get_settings
from ferry.consumers.offsets import start_group_at_end
from ferry.contracts.topics import FILE_EVENTS, INBOUND_TOPICS
from ferry.db import create_engine, create_sessionmaker
from ferry.devstack import Stack
from ferry.processes import connect
from ferry.producers import EventPublisher
from ferry.storage import providers_from_env

RESULTS = Path(__file__).parent / "results"
OUTBOUND = [
    "ferry.file-events.v1",
    "ferry.tenant-events.v1",
    "ferry.billing-commands.v1",
    "ferry.notifications.v1",
    "ferry.dlq.v1",
]
console = Console()


def processes(settings: Settings, run: str, logs: Path) -> dict[str, list[Proc]]:
    env = {
        "FERRY_CONSUMER_GROUP": f"{run}-bridge",
        "FERRY_FILES_TASK_QUEUE": f"{run}-files",
        "FERRY_TENANTS_TASK_QUEUE": f"{run}-tenants",
        "FERRY_METER_APP_ID": f"{run}-meter",
        "FERRY_BRIDGE_METRICS_PORT": "0",
        "FERRY_WORKER_METRICS_PORT": "0",
        "FERRY_LOG_FORMAT": "json",
    }
    return {
        "bridge": [Proc(f"bridge-{i}", "consume", env, logs) for i in (1, 2)],
        "worker": [Proc(f"worker-{i}", "worker", env, logs) for i in (1, 2)],
        "meter": [Proc("meter", "meter", env, logs)],
    }


async def provision(traffic: Traffic, collector: Collector, count: int, timeout: float) -> None:
    """The first tenants, provisioned before the traffic's clock starts."""
    wanted = [
        await traffic.create_tenant(provider)
        for provider in ("local", "s3", "gcs", "azure", "local")[:count]
    ]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        follow_outcomes(traffic, collector)
        if all(t in traffic.tenants for t in wanted):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"tenants not provisioned within {timeout:.0f} s: {wanted}")


def follow_outcomes(traffic: Traffic, collector: Collector, seen: list[int] | None = None) -> None:
    """What the traffic learns from Ferry's events: tenants provisioned, files processed."""
    for s in collector.seen[seen[0] if seen else 0 :]:
        event = s.event or {}
        kind = event.get("event_type")
        if kind == "tenant.provisioned":
            traffic.provisioned(str(event["tenant_id"]))
        elif kind == "file.processed":
            traffic.processed.setdefault(str(event["tenant_id"]), []).append(str(event["file_id"]))
    if seen:
        seen[0] = len(collector.seen)


async def drive(
    traffic: Traffic, collector: Collector, duration: float, rate: float, migrate_at: float
) -> None:
    """The steady mix for `duration` seconds; charge requests answered as they come."""
    seen, paid = [0], set[str]()
    started = time.monotonic()
    migrated = False
    while (elapsed := time.monotonic() - started) < duration:
        follow_outcomes(traffic, collector, seen)
        for s in collector.events("ferry.billing-commands.v1"):
            event = s.event or {}
            if (
                event.get("event_type") == "billing.charge_requested"
                and str(event["event_id"]) not in paid
                and str(event["tenant_id"]) in traffic.tenants
            ):
                paid.add(str(event["event_id"]))
                await traffic.pay(event)
        if not migrated and elapsed >= migrate_at and traffic.processed:
            await traffic.migrate()
            migrated = True
        await traffic.step()
        await asyncio.sleep(max(0.0, (1 / rate) - (time.monotonic() - started - elapsed)))


async def main(args: argparse.Namespace) -> int:
    settings = get_settings()
    run = f"chaos{args.seed}x{uuid.uuid4().hex[:4]}"
    out_dir = RESULTS / run
    out_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack()
    storage = providers_from_env(settings.local_storage_root)
    for provider in storage.values():
        await provider.create_bucket(settings.ingest_bucket)
    await start_group_at_end(settings.kafka_bootstrap, f"{run}-bridge", INBOUND_TOPICS)
    await start_group_at_end(settings.kafka_bootstrap, f"{run}-meter", [FILE_EVENTS])
    started = time.monotonic()
    collector = Collector(settings.kafka_bootstrap, OUTBOUND, started)
    await collector.start()
    procs = processes(settings, run, out_dir)
    for group in procs.values():
        for proc in group:
            proc.start()
    stop_collecting, stop_watching = asyncio.Event(), asyncio.Event()
    collecting = asyncio.create_task(collector.run(stop_collecting))
    nemesis = Nemesis(stack, procs, started, args.seed, args.outage)
    watching = asyncio.create_task(nemesis.watch(stop_watching))
    client = await connect(settings)
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=4)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with EventPublisher(settings.kafka_bootstrap) as publisher:
            traffic = Traffic(publisher, storage, settings.ingest_bucket, run, args.seed, started)
            console.print(f"[bold]{run}[/bold]: provisioning tenants; logs in {out_dir}")
            await provision(traffic, collector, 5, 180)
            console.print(
                f"traffic for {args.duration:.0f} s at {args.rate}/s, {args.faults} faults"
            )
            kinds = schedule(args.duration, args.seed, args.faults)
            faulting = asyncio.create_task(nemesis.run(kinds, args.duration))
            await drive(traffic, collector, args.duration, args.rate, args.duration * 0.4)
            await faulting
            console.print("traffic stopped; waiting for the system to be quiet")
            groups = {f"{run}-bridge": list(INBOUND_TOPICS), f"{run}-meter": [FILE_EVENTS]}
            quiet_started = time.monotonic()
            while time.monotonic() - quiet_started < args.quiet:
                follow_outcomes(traffic, collector)
                if await quiet(traffic.sent, collector, client, settings.kafka_bootstrap, groups):
                    break
                await asyncio.sleep(2)
            quiet_after = round(time.monotonic() - quiet_started, 1)
            await asyncio.sleep(5)  # late duplicates, if any, are counted too
            report = await check(
                traffic.sent,
                collector,
                client,
                sessionmaker,
                storage,
                settings.kafka_bootstrap,
                groups,
                nemesis.faults,
                settings.quarantine_bucket,
            )
    finally:
        stop_watching.set()
        await watching
        for group in procs.values():
            for proc in group:
                proc.stop()
        stop_collecting.set()
        await collecting
        await collector.stop()
        await engine.dispose()
        for provider in storage.values():
            await provider.close()
    exits = {p.name: p.unexpected_exits for g in procs.values() for p in g if p.unexpected_exits}
    for name, ended in exits.items():
        report.problem(f"{name} exited by itself: {ended}")
    result = summary(run, args, traffic, collector, nemesis, report, exits, quiet_after)
    (RESULTS / f"{run}.json").write_text(json.dumps(result, indent=2, default=str))
    show(result)
    console.print(f"written: {RESULTS / f'{run}.json'}")
    return 0 if result["ok"] else 1


def summary(
    run: str,
    args: argparse.Namespace,
    traffic: Traffic,
    collector: Collector,
    nemesis: Nemesis,
    report: Report,
    exits: dict[str, Any],
    quiet_after: float,
) -> dict[str, Any]:
    c = report.counts
    by_kind: dict[str, int] = {}
    for fault in nemesis.faults:
        by_kind[fault.kind] = by_kind.get(fault.kind, 0) + 1
    recoveries = [r["recovered_after"] for r in report.recovery]
    worst = None if None in recoveries or not recoveries else max(recoveries)
    return {
        "run": run,
        "seed": args.seed,
        "duration_s": args.duration,
        "rate_per_s": args.rate,
        "events_in": len(traffic.sent),
        "by_kind": {
            k: sum(s.kind == k for s in traffic.sent)
            for k in sorted({s.kind for s in traffic.sent})
        },
        "outbound_records": len(collector.seen),
        "counts": c,
        "lost": c.get("outcomes_lost", 0)
        + c.get("workflows_missing", 0)
        + c.get("dead_letters_missing", 0),
        "duplicated": c.get("outcomes_duplicated", 0) + c.get("workflows_duplicated", 0),
        "stuck": c.get("workflows_stuck", 0),
        "faults": [asdict(f) for f in nemesis.faults],
        "faults_by_kind": by_kind,
        "recovery": report.recovery,
        "worst_recovery_s": worst,
        "worst_after_restore_s": max(
            (r["after_restore"] for r in report.recovery if r["after_restore"] is not None),
            default=None,
        ),
        "quiet_after_s": quiet_after,
        "unexpected_exits": exits,
        "problems": report.problems,
        "ok": not report.problems and worst is not None,
    }


def show(result: dict[str, Any]) -> None:
    c = result["counts"]
    table = Table(title=f"chaos run {result['run']} (seed {result['seed']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("events in", result["events_in"]),
        ("workflows expected", c.get("workflows_expected")),
        (
            "uploads / outcomes redelivered (same ID)",
            f"{c.get('uploads')} / {c.get('outcomes_redelivered')}",
        ),
        ("lost", result["lost"]),
        ("duplicated", result["duplicated"]),
        ("unexpected outcomes", c.get("outcomes_unexpected")),
        ("files misplaced", c.get("files_misplaced")),
        (
            "dead-lettered expected / unexpected",
            f"{c.get('dead_letters_expected')} / {c.get('dead_letters_unexpected')}",
        ),
        ("upgrades / wrong", f"{c.get('upgrades')} / {c.get('upgrades_wrong')}"),
        ("shares / wrong", f"{c.get('shares')} / {c.get('shares_wrong')}"),
        ("isolation probes / leaks", f"{c.get('isolation_probes')} / {c.get('isolation_leaks')}"),
        ("stuck", result["stuck"]),
        ("failed workflows", c.get("workflows_failed")),
        ("lag bridge / meter", f"{c.get('lag_bridge')} / {c.get('lag_meter')}"),
        ("faults", ", ".join(f"{k} x{n}" for k, n in sorted(result["faults_by_kind"].items()))),
        ("worst recovery (s, from the fault)", result["worst_recovery_s"]),
        ("worst recovery (s, from the service's return)", result["worst_after_restore_s"]),
        ("quiet after (s)", result["quiet_after_s"]),
        ("processes that exited by themselves", len(result["unexpected_exits"])),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    for problem in result["problems"][:40]:
        console.print(f"[red]✗[/red] {problem}")
    console.print(
        "[green]all guarantees held[/green]" if result["ok"] else "[red]guarantees broken[/red]"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of traffic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=3.0, help="inbound actions per second")
    parser.add_argument("--faults", type=int, default=24, help="faults over the run")
    parser.add_argument(
        "--outage", type=float, default=30.0, help="seconds clamd and an emulator stay down"
    )
    parser.add_argument("--quiet", type=float, default=300.0, help="seconds to wait for quiet")
    os.environ.setdefault("FERRY_LOG_FORMAT", "console")
    # The run's own clients (the collector, the publisher) say every reconnection while
    # Kafka is down; the Ferry processes' logs are in the run's directory.
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    sys.exit(asyncio.run(main(parser.parse_args())))
