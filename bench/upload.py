"""Upload benchmark: the whole file_upload_workflow on the local stack.

Measures
  (a) files per second through the whole workflow for a mix of small JPEGs,
      PNGs and PDFs (the one-pass inspection: size, SHA-256, scan, validation; the
      move; thumbnails, metadata and analysis from the inspection's copy; database,
      event);
  (b) the time and the worker's peak RSS for one 1 GiB file;
  (c) the thumbnail stage's rate on large JPEGs with and without Pillow's
      draft mode;
  (d) the baseline, in the same run: the same per-file work on the same file mix
      in one plain process, with no Kafka, Temporal or database (the activities'
      own code, each call in Temporal's in-process ActivityEnvironment): the one-pass
      inspection (stream and hash into a copy, scan it with the same clamd, sniff and
      validate it), then thumbnails, metadata, moderation and OCR from that copy,
      the moderation model loaded in this process. That is the floor of this work
      on this machine; Ferry's rate is printed beside it with their ratio, and CPU
      milliseconds per file for each process (Temporal server, worker, clamd, the
      moderation service, Kafka, Postgres, this client) from a per-process sampler;
  (e) both thumbnails' CPU per image by Pillow (Ferry's code) and by libvips (pyvips,
      the `bench` extra), for the mix's JPEG and PNG and a 12 MP JPEG: Ferry keeps the
      faster.
The worker runs as its own process (`ferry worker`) so its memory is its own; (a) is
measured after a warm-up of a few uploads (the worker's first connections, prepared
statements and imports, the stack's first tasks), so it is the steady rate.
Prints a table and writes bench/results/upload.json. Run: `make bench-upload`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psutil
from PIL import Image, ImageDraw
from pypdf import PdfWriter
from rich.console import Console
from rich.table import Table
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from ferry.activities.inspect import InspectActivities, InspectRequest
from ferry.activities.media import MediaActivities
from ferry.activities.media_payloads import AnalysisRequest, MetadataRequest, ThumbnailRequest
from ferry.activities.scan import ScanActivities
from ferry.activities.spool import SpoolStore
from ferry.config import Settings, get_settings
from ferry.contracts.enums import TenantPlan
from ferry.contracts.storage import StorageRef
from ferry.contracts.workflows import FileUploadInput
from ferry.db import create_engine, create_sessionmaker
from ferry.demo import ensure_tenant
from ferry.devstack import Stack
from ferry.media.images import render_thumbnails
from ferry.media.limits import MediaLimits
from ferry.processes import connect
from ferry.storage import LocalStorage
from ferry.workflows.file_upload import FileUploadWorkflow

RESULTS = Path(__file__).parent / "results"
GIB = 1024**3
console = Console()


def jpeg(width: int, height: int, seed: int) -> bytes:
    image = Image.effect_noise((width, height), 40 + seed % 20).convert("RGB")
    ImageDraw.Draw(image).text((20, 20), f"Ferry {seed}", fill="white")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def png(seed: int) -> bytes:
    image = Image.new("RGB", (800, 600), (seed * 7 % 255, 120, 200))
    ImageDraw.Draw(image).text((20, 20), f"Ferry {seed}", fill="white")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pdf(seed: int) -> bytes:
    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(width=612, height=792)
    writer.add_metadata({"/Title": f"Ferry {seed}"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


class WorkerProcess:
    def __init__(self, queue: str) -> None:
        # No reconciliation or rescan from a benchmark's worker (nor their runs in the figures).
        env = {
            **os.environ,
            "FERRY_FILES_TASK_QUEUE": queue,
            "FERRY_RECONCILIATION_INTERVAL_SECONDS": "0",
            "FERRY_RESCAN_INTERVAL_SECONDS": "0",
            "FERRY_RESCAN_ON_NEW_SIGNATURES": "false",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferry.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def stage(
    storage: LocalStorage, settings: Settings, tenant: str, name: str, chunks: AsyncIterator[bytes]
) -> tuple[str, str]:
    file_id = str(uuid.uuid4())
    key = f"tenants/{tenant}/uploads/{file_id}/{name}"
    info = await storage.write(settings.ingest_bucket, key, chunks)
    return file_id, f"{key}|{info.size}"


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def run_uploads(
    client: Client,
    queue: str,
    tenant: str,
    staged: list[tuple[str, str, str, str]],
    settings: Settings,
) -> list[Any]:
    handles = []
    for file_id, name, content_type, key_size in staged:
        key, size = key_size.split("|")
        upload = FileUploadInput(
            event_id=str(uuid.uuid4()),
            tenant_id=tenant,
            file_id=file_id,
            filename=name,
            declared_content_type=content_type,
            size_bytes=int(size),
            storage=StorageRef("local", settings.ingest_bucket, key),
            uploaded_by="bench",
        )
        handles.append(
            await client.start_workflow(
                FileUploadWorkflow.run,
                upload,
                id=f"file-upload/{tenant}/{file_id}",
                task_queue=queue,
            )
        )
    return list(await asyncio.gather(*(h.result() for h in handles)))


async def big_file(storage: LocalStorage, settings: Settings, tenant: str) -> tuple[str, str]:
    async def chunks() -> AsyncIterator[bytes]:
        # A 1 GiB log file: text, so it passes validation and takes the whole path.
        for i in range(GIB // (1024 * 1024)):
            line = f"{i:08d} ferry benchmark log line, nothing to see here\n".encode()
            block = line * (1024 * 1024 // len(line) + 1)
            yield block[: 1024 * 1024]

    return await stage(storage, settings, tenant, "server.log.txt", chunks())


async def thumbnail_rate(count: int, draft: bool) -> float:
    with tempfile.TemporaryDirectory() as root:
        storage = LocalStorage(Path(root))
        await storage.create_bucket("bench")
        media = MediaActivities({"local": storage})
        sources = []
        for i in range(count):
            key = f"src/{i}.jpg"
            await storage.write("bench", key, one(jpeg(4000, 3000, i)))
            sources.append(StorageRef("local", "bench", key))
        began = time.perf_counter()
        for i, source in enumerate(sources):
            await media.make_thumbnails(
                ThumbnailRequest(source=source, bucket="bench", file_id=f"f{i}", draft=draft)
            )
        return count / (time.perf_counter() - began)


def pillow_thumbnails(path: Path, content_type: str, limits: MediaLimits) -> int:
    """Ferry's thumbnails of one image (Pillow, draft mode): their bytes in all."""
    return sum(len(data) for _, _, data, _, _ in render_thumbnails(path, content_type, limits))


def vips_thumbnails(path: Path, content_type: str, limits: MediaLimits) -> int:
    """The same two thumbnails with libvips: its `thumbnail` (shrink-on-load, as draft
    mode), the 256 px one from the 1024 px one, the same encoders' settings and no
    metadata kept. Their bytes in all."""
    import pyvips

    large = pyvips.Image.thumbnail(str(path), 1024, size="down").copy_memory()
    small = large.thumbnail_image(256, size="down")
    jpeg_bytes = large.jpegsave_buffer(Q=limits.jpeg_quality, keep="none")
    webp_bytes = small.webpsave_buffer(
        Q=limits.webp_quality, effort=limits.webp_method, keep="none"
    )
    return len(jpeg_bytes) + len(webp_bytes)


def thumbnail_engines(rounds: int = 8) -> dict[str, float]:
    """CPU ms per image of both thumbnails by Pillow (Ferry's code) and by libvips, for
    the small mix's JPEG and PNG and for a 12 MP JPEG: the same images, one thread
    each (libvips' own pool at one thread, as ONNX Runtime's), taken in turn."""
    os.environ["VIPS_CONCURRENCY"] = "1"
    import pyvips

    pyvips.cache_set_max(0)  # no result of an earlier round reused
    limits = MediaLimits()
    samples = {
        "1600x1200 JPEG": ("image/jpeg", jpeg(1600, 1200, 1)),
        "800x600 PNG": ("image/png", png(1)),
        "4000x3000 JPEG": ("image/jpeg", jpeg(4000, 3000, 2)),
    }
    figures = {}
    with tempfile.TemporaryDirectory() as root:
        for label, (content_type, data) in samples.items():
            path = Path(root, label.replace(" ", "."))
            path.write_bytes(data)
            engines = {"pillow": pillow_thumbnails, "libvips": vips_thumbnails}
            for render in engines.values():  # a round to warm both up, uncounted
                render(path, content_type, limits)
            spent = dict.fromkeys(engines, 0.0)
            for _ in range(rounds):
                for engine, render in engines.items():
                    began = time.process_time()
                    render(path, content_type, limits)
                    spent[engine] += time.process_time() - began
            for engine, seconds in spent.items():
                figures[f"{label}.{engine}"] = 1000 * seconds / rounds
    return figures


class CpuSampler:
    """CPU seconds (user + system) of each process of interest and its children, those
    still running and those it has reaped (Postgres' backends), the processes named in
    `alone` without their children (this client, whose child the worker is)."""

    def __init__(self, pids: dict[str, int], alone: tuple[str, ...] = ()) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.alone = alone

    def seconds(self) -> dict[str, float]:
        total = {}
        for name, proc in self.procs.items():
            spent = 0.0
            family = [proc] if name in self.alone else [proc, *proc.children(recursive=True)]
            for member in family:
                try:
                    times = member.cpu_times()
                except psutil.Error:
                    continue
                spent += times.user + times.system
                if name not in self.alone:
                    # Children that ended between two readings count too (a tesseract or
                    # Postgres backend's whole run), once the process has reaped them.
                    spent += times.children_user + times.children_system
            total[name] = spent
        return total


def thread_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of a worker process's threads, by what they run: its event loop (the
    main thread: the SDK's Python side, the activities' own code, the database), the
    Temporal SDK's core (its Rust threads, by their names), and the other threads (the
    media work, and file I/O handed off by `asyncio.to_thread`). Threads that ended are
    not counted."""
    groups = {"event loop": 0.0, "SDK core": 0.0, "other threads": 0.0}
    for thread in psutil.Process(pid).threads():
        try:
            name = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
        except FileNotFoundError:
            continue
        if thread.id == pid:
            group = "event loop"
        elif name.startswith(("tokio", "temporal", "workflow-proces")):
            group = "SDK core"
        else:
            group = "other threads"
        groups[group] += thread.user_time + thread.system_time
    return groups


def stack_pids() -> dict[str, int]:
    wanted = {"temporal", "clamd", "moderator", "kafka", "postgres"}
    return {s.name: s.pid for s in Stack().status() if s.name in wanted and s.pid is not None}


def small_mix(count: int, first: int = 0) -> list[tuple[str, str, bytes]]:
    """The benchmark's small files: JPEG photos, PNG charts and PDFs, in turn, each of
    its own bytes (seeded from `first` on): clamd keeps the verdicts of the bytes it has
    seen, and a file it has scanned before costs it nothing."""
    return [
        (
            (f"photo-{i}.jpg", "image/jpeg", jpeg(1600, 1200, i)),
            (f"chart-{i}.png", "image/png", png(i)),
            (f"doc-{i}.pdf", "application/pdf", pdf(i)),
        )[i % 3]
        for i in range(first, first + count)
    ]


async def baseline(
    settings: Settings,
    mix: list[tuple[str, str, bytes]],
    concurrency: int,
    warm: Sequence[tuple[str, str, bytes]] = (),
) -> dict[str, float]:
    """(d) The per-file work in this process alone: the activities' code, no server; after
    `warm`'s, uncounted (the moderation model's first load, clamd's connections)."""
    host, port = settings.clamd_host_port
    with tempfile.TemporaryDirectory() as root:
        local = LocalStorage(Path(root))
        await local.create_bucket("ferry-ingest")
        await local.create_bucket("files")
        providers = {"local": local}
        spool = SpoolStore(Path(root) / "spool", "bench")
        media = MediaActivities(providers, spool=spool)
        inspect = InspectActivities(providers, spool, ScanActivities(host, port, providers), media)
        refs = []
        for i, (name, content_type, data) in enumerate([*warm, *mix]):
            key = f"tenants/bench/uploads/{i}/{name}"
            await local.write("ferry-ingest", key, one(data))
            refs.append((StorageRef("local", "ferry-ingest", key), name, content_type, len(data)))
        gate = asyncio.Semaphore(concurrency)

        async def work(i: int, ref: StorageRef, name: str, content_type: str, size: int) -> None:
            async with gate:
                run = ActivityEnvironment().run
                found = await run(
                    inspect.inspect_upload,
                    InspectRequest(ref, "bench", str(i), name, content_type, size, 10 * GIB),
                )
                assert found.validation is not None and found.spool is not None
                copy = found.spool.spool_id
                kind, sha256 = found.validation.content_type, found.sha256
                await asyncio.gather(
                    run(media.make_thumbnails, ThumbnailRequest(ref, "files", f"f{i}", spool=copy)),
                    run(media.extract_metadata, MetadataRequest(ref, sha256=sha256, spool=copy)),
                    run(media.analyse_content, AnalysisRequest(ref, kind, spool=copy)),
                )

        await asyncio.gather(*(work(i, *r) for i, r in enumerate(refs[: len(warm)])))
        sampler = CpuSampler({"this process": os.getpid(), **stack_pids()})
        cpu_before = sampler.seconds()
        began = time.perf_counter()
        await asyncio.gather(*(work(i, *refs[i]) for i in range(len(warm), len(refs))))
        elapsed = time.perf_counter() - began
        cpu_after = sampler.seconds()
    used = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    return {
        "files_per_s": len(mix) / elapsed,
        **{f"cpu_ms_per_file.{n}": 1000 * v / len(mix) for n, v in used.items()},
    }


# Uploads before (a) is measured, of bytes of their own: not counted.
WARM_UP = 12


async def main(small: int, with_big: bool) -> dict[str, Any]:
    settings = get_settings()
    client = await connect(settings)
    storage = LocalStorage(settings.local_storage_root)
    await storage.create_bucket(settings.ingest_bucket)
    tenant = f"bench-up-{uuid.uuid4().hex[:8]}"
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    await ensure_tenant(create_sessionmaker(engine), tenant, TenantPlan.ENTERPRISE)
    await engine.dispose()
    results: dict[str, Any] = {"small_files": small}

    if with_big:
        console.print("(b) one 1 GiB file through the whole workflow, on a fresh worker…")
        queue = f"bench-up-{uuid.uuid4().hex[:8]}"
        worker = WorkerProcess(queue)
        file_id, key_size = await big_file(storage, settings, tenant)
        began = time.perf_counter()
        [result] = await run_uploads(
            client, queue, tenant, [(file_id, "server.log.txt", "text/plain", key_size)],
            settings,
        )  # fmt: skip
        results["big_file_seconds"] = time.perf_counter() - began
        results["big_file_status"] = f"{result.status} {result.reason or ''}".strip()
        results["big_file_worker_peak_rss_mb"] = worker.peak_rss_mb()
        worker.stop()

    if not small:
        return results
    console.print(f"(a) {small} small JPEGs, PNGs and PDFs through the whole workflow…")
    queue = f"bench-up-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(queue)

    async def staged_mix(mix: list[tuple[str, str, bytes]]) -> list[tuple[str, str, str, str]]:
        staged = []
        for name, content_type, data in mix:
            file_id, key_size = await stage(storage, settings, tenant, name, one(data))
            staged.append((file_id, name, content_type, key_size))
        return staged

    # Bytes no earlier run had: clamd keeps the verdicts of the bytes it has seen.
    first = secrets.randbelow(10**9)
    staged = await staged_mix(small_mix(small, first))
    # The warm-up also waits out the worker's start.
    warm = await staged_mix(small_mix(WARM_UP, first + 2 * small))
    await run_uploads(client, queue, tenant, warm, settings)
    sampler = CpuSampler(
        {"worker": worker.proc.pid, "this client": os.getpid(), **stack_pids()},
        alone=("this client",),
    )
    cpu_before, threads_before = sampler.seconds(), thread_seconds(worker.proc.pid)
    began = time.perf_counter()
    outcomes = await run_uploads(client, queue, tenant, staged, settings)
    elapsed = time.perf_counter() - began
    cpu_after, threads_after = sampler.seconds(), thread_seconds(worker.proc.pid)
    results["small_files_per_s"] = small / elapsed
    for name, spent in threads_after.items():
        results[f"worker_thread_cpu_ms_per_file.{name}"] = (
            1000 * (spent - threads_before[name]) / small
        )
    for name in cpu_after:
        spent = cpu_after[name] - cpu_before[name]
        results[f"cpu_ms_per_file.{name}"] = 1000 * spent / small
    results["small_processed"] = sum(o.status == "processed" for o in outcomes)
    results["small_worker_peak_rss_mb"] = worker.peak_rss_mb()
    # The moderation service holds the model for the workers (the stack's, if it runs one).
    moderator = stack_pids().get("moderator")
    if moderator is not None:
        results["moderator_rss_mb"] = psutil.Process(moderator).memory_info().rss / 2**20
    worker.stop()

    console.print(f"(d) the baseline: the same {small} files' work in this process alone…")
    # The same kinds and sizes of file, other bytes: none of them is in clamd's cache.
    bare = await baseline(
        settings,
        small_mix(small, first + small),
        concurrency=8,
        warm=small_mix(WARM_UP, first + 2 * small + WARM_UP),
    )
    results.update({f"baseline.{k}": v for k, v in bare.items()})
    results["ratio_ferry_to_baseline"] = results["small_files_per_s"] / bare["files_per_s"]

    console.print("(c) thumbnails of 4000x3000 JPEGs, with and without draft mode…")
    results["thumbnails_per_s_draft"] = await thumbnail_rate(10, draft=True)
    results["thumbnails_per_s_no_draft"] = await thumbnail_rate(10, draft=False)
    console.print("(e) both thumbnails by Pillow and by libvips, CPU per image…")
    results.update({f"thumbnail_cpu_ms.{k}": v for k, v in thumbnail_engines().items()})
    return results


def report(results: dict[str, Any]) -> None:
    table = Table("measure", "value", "goal", title="Ferry upload benchmark")
    if results["small_files"]:
        add_small_rows(table, results)
    if "big_file_seconds" in results:
        table.add_row(
            "(b) one 1 GiB file",
            f"{results['big_file_seconds']:.1f} s ({results['big_file_status']})",
            "< 60 s",
        )
        table.add_row(
            "    worker peak RSS", f"{results['big_file_worker_peak_rss_mb']:.0f} MB", "< 300 MB"
        )
    console.print(table)


def add_small_rows(table: Table, results: dict[str, Any]) -> None:
    table.add_row(
        "(a) small files through the workflow",
        f"{results['small_files_per_s']:.1f} files/s ({results['small_processed']} processed)",
        "≥ 20 /s",
    )
    table.add_row(
        "    worker peak RSS", f"{results['small_worker_peak_rss_mb']:.0f} MB", "< 300 MB"
    )
    if "moderator_rss_mb" in results:
        table.add_row(
            "    the moderation service's RSS (its model)",
            f"{results['moderator_rss_mb']:.0f} MB",
            "",
        )
    table.add_row(
        "(d) baseline: the same work, one plain process",
        f"{results['baseline.files_per_s']:.1f} files/s",
        "",
    )
    table.add_row("    Ferry / baseline", f"{results['ratio_ferry_to_baseline']:.2f}", "≥ 0.6")
    for key in sorted(k for k in results if k.startswith("cpu_ms_per_file.")):
        table.add_row(
            f"    Ferry: CPU ms per file, {key.split('.', 1)[1]}", f"{results[key]:.0f}", ""
        )
    for key in sorted(k for k in results if k.startswith("worker_thread_cpu_ms_per_file.")):
        table.add_row(f"      of the worker's: {key.split('.', 1)[1]}", f"{results[key]:.0f}", "")
    for key in sorted(k for k in results if k.startswith("baseline.cpu_ms_per_file.")):
        name = key.split(".", 2)[2]
        goal = "< 60 in all" if name == "this process" else ""
        table.add_row(f"    baseline: CPU ms per file, {name}", f"{results[key]:.0f}", goal)
    table.add_row("(c) thumbnails, draft mode", f"{results['thumbnails_per_s_draft']:.1f} /s", "")
    table.add_row("    without draft mode", f"{results['thumbnails_per_s_no_draft']:.1f} /s", "")
    images = sorted({k.split(".")[1] for k in results if k.startswith("thumbnail_cpu_ms.")})
    for image in images:
        pillow, vips = (results[f"thumbnail_cpu_ms.{image}.{e}"] for e in ("pillow", "libvips"))
        table.add_row(
            f"(e) thumbnails of a {image}, CPU per image",
            f"Pillow {pillow:.0f} ms, libvips {vips:.0f} ms",
            "the faster is Ferry's",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=120)
    parser.add_argument("--no-big", action="store_true", help="skip the 1 GiB file")
    args = parser.parse_args()
    outcome = asyncio.run(main(args.small, not args.no_big))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "upload.json").write_text(json.dumps(outcome, indent=2))
    report(outcome)
    console.print(f"written to {RESULTS / 'upload.json'}")
