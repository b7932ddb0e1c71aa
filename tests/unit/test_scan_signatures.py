"""scan_object tells Prometheus which signature database clamd scans with, asking clamd's
VERSION at most once a minute, and a VERSION that fails or hangs changes no verdict.

clamd here is a small server speaking clamd's protocol (pyclamd's `nVERSION` and
`nINSTREAM` commands), so the scans and the VERSION asks are counted exactly; the
gauges are read from a Temporal runtime's Prometheus endpoint, where the worker's are.
"""

from __future__ import annotations

import dataclasses
import socket
import socketserver
import struct
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from ferry.activities import scan as scan_module
from ferry.activities.scan import SIGNATURE_AGE, SIGNATURE_VERSION, ScanActivities, ScanResult
from ferry.contracts.storage import ScopedRef
from ferry.storage import LocalStorage

BUCKET, KEY = "scans", "notes.txt"


class FakeClamd(socketserver.ThreadingTCPServer):
    """Answers VERSION with `version` (None: closes without a word; "hang": never answers)
    and every INSTREAM with `stream: OK`; records the commands."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.version: str | None = "ClamAV 1.4.3"
        self.commands: list[str] = []
        self.release = threading.Event()

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port


class _Handler(socketserver.StreamRequestHandler):
    server: FakeClamd

    def handle(self) -> None:
        command = self.rfile.readline().decode().strip().removeprefix("n")
        if not command:
            return  # pyclamd connects and closes once as it is made, to test the address
        self.server.commands.append(command)
        if command == "VERSION":
            if self.server.version == "hang":
                self.server.release.wait(10)
            elif self.server.version is not None:
                self.wfile.write(f"{self.server.version}\n".encode())
        elif command == "INSTREAM":
            while size := struct.unpack("!L", self.rfile.read(4))[0]:
                self.rfile.read(size)
            self.wfile.write(b"stream: OK\n")


@pytest.fixture
def clamd() -> Iterator[FakeClamd]:
    server = FakeClamd()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def metrics_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def runtime(metrics_port: int) -> Runtime:
    config = PrometheusConfig(bind_address=f"127.0.0.1:{metrics_port}")
    return Runtime(telemetry=TelemetryConfig(metrics=config))


@pytest.fixture
async def storage(tmp_path: Path) -> LocalStorage:
    local = LocalStorage(tmp_path)
    await local.create_bucket(BUCKET)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"nothing to see here\n"

    await local.write(BUCKET, KEY, chunks())
    return local


def environment(runtime: Runtime, task_queue: str) -> ActivityEnvironment:
    """An activity environment whose metrics go to `runtime`, labelled with `task_queue`."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, task_queue=task_queue)
    env.metric_meter = runtime.metric_meter
    return env


def gauges(port: int, task_queue: str) -> dict[str, float]:
    """The runtime's clamd gauges of this task queue, by name, as Prometheus reads them."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("ferry_clamd_") and f'task_queue="{task_queue}"' in line:
            name, value = line.split("{", 1)[0], line.rsplit(" ", 1)[1]
            found[name] = float(value)
    return found


async def scan(activities: ScanActivities, env: ActivityEnvironment) -> ScanResult:
    result: ScanResult = await env.run(activities.scan, ScopedRef("local", BUCKET, KEY))
    return result


async def test_scans_export_the_signature_version_and_age_asking_version_once_a_minute(
    clamd: FakeClamd, storage: LocalStorage, runtime: Runtime, metrics_port: int
) -> None:
    built = int(time.time()) - 2 * 86400
    clamd.version = f"ClamAV 1.4.3/27476/{time.ctime(built)}"  # ctime(), as clamd writes it
    activities = ScanActivities("127.0.0.1", clamd.port, {"local": storage})
    env = environment(runtime, "scan-once-a-minute")

    for _ in range(3):  # each verdict names the version that gave it
        assert await scan(activities, env) == ScanResult(clean=True, signature_version=27476)

    assert clamd.commands == ["VERSION", "INSTREAM", "INSTREAM", "INSTREAM"]
    found = gauges(metrics_port, "scan-once-a-minute")
    assert found[SIGNATURE_VERSION] == 27476
    assert 2 * 86400 <= found[SIGNATURE_AGE] < 2 * 86400 + 60


async def test_version_is_asked_again_once_the_interval_has_passed(
    clamd: FakeClamd, storage: LocalStorage, runtime: Runtime, metrics_port: int
) -> None:
    activities = ScanActivities("127.0.0.1", clamd.port, {"local": storage}, version_interval=0)
    env = environment(runtime, "scan-interval-passed")
    clamd.version = f"ClamAV 1.4.3/27476/{time.ctime(time.time() - 3 * 86400)}"
    await scan(activities, env)
    assert gauges(metrics_port, "scan-interval-passed")[SIGNATURE_AGE] >= 3 * 86400
    clamd.version = f"ClamAV 1.4.3/27477/{time.ctime(time.time() - 600)}"  # freshclam's next
    await scan(activities, env)

    assert clamd.commands == ["VERSION", "INSTREAM", "VERSION", "INSTREAM"]
    found = gauges(metrics_port, "scan-interval-passed")
    assert found[SIGNATURE_VERSION] == 27477
    assert 600 <= found[SIGNATURE_AGE] < 660


async def test_a_database_built_in_the_future_is_new_not_a_failed_scan(
    clamd: FakeClamd, storage: LocalStorage, runtime: Runtime, metrics_port: int
) -> None:
    """clamd's clock, or the database's builder's, ahead of the worker's."""
    activities = ScanActivities("127.0.0.1", clamd.port, {"local": storage})
    clamd.version = f"ClamAV 1.4.3/27478/{time.ctime(time.time() + 3600)}"
    env = environment(runtime, "scan-future-build")
    assert await scan(activities, env) == ScanResult(clean=True, signature_version=27478)
    assert gauges(metrics_port, "scan-future-build")[SIGNATURE_AGE] == 0


async def test_a_database_without_a_daily_build_exports_no_age(
    clamd: FakeClamd, storage: LocalStorage, runtime: Runtime, metrics_port: int
) -> None:
    activities = ScanActivities("127.0.0.1", clamd.port, {"local": storage})
    env = environment(runtime, "scan-engine-only")
    clamd.version = "ClamAV 1.4.6"  # a clamd with no daily database
    assert await scan(activities, env) == ScanResult(clean=True)
    assert not gauges(metrics_port, "scan-engine-only")

    activities = ScanActivities("127.0.0.1", clamd.port, {"local": storage})
    clamd.version = "ClamAV 1.0.7/1"
    await scan(activities, env)
    assert gauges(metrics_port, "scan-engine-only") == {SIGNATURE_VERSION: 1}


@pytest.mark.parametrize("answer", [None, "UNKNOWN COMMAND"])
async def test_a_version_that_fails_changes_no_verdict(
    answer: str | None,
    clamd: FakeClamd,
    storage: LocalStorage,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clamd.version = answer
    activities = ScanActivities("127.0.0.1", clamd.port, {"local": storage})
    assert await scan(activities, environment(runtime, "scan-version-fails")) == ScanResult(
        clean=True
    )
    assert clamd.commands == ["VERSION", "INSTREAM"]
    assert "clamd did not say which signatures it has" in caplog.text


async def test_a_version_that_hangs_holds_the_scan_no_longer_than_its_timeout(
    clamd: FakeClamd,
    storage: LocalStorage,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scan_module, "VERSION_TIMEOUT", 0.3)
    clamd.version = "hang"
    activities = ScanActivities("127.0.0.1", clamd.port, {"local": storage})
    started = time.monotonic()
    assert await scan(activities, environment(runtime, "scan-version-hangs")) == ScanResult(
        clean=True
    )
    assert time.monotonic() - started < 2
    # The next scans within the minute do not ask (nor wait) again.
    await scan(activities, environment(runtime, "scan-version-hangs"))
    assert clamd.commands.count("VERSION") == 1
