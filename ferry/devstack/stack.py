"""Start, stop and inspect the local stack.

The stack lives in one directory (default `./.ferry`): each service's data,
its log, the pid file of each process the stack started, the ports chosen on
the first start, and `stack.env`, the env file that Ferry's settings read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from ferry.devstack.services import PREFERRED_PORTS, SERVICES, Context, Service

INBOUND_TOPICS = (
    "ferry.uploads.v1",
    "ferry.storage-notifications.v1",
    "ferry.file-commands.v1",
    "ferry.tenants.v1",
    "ferry.billing.v1",
)
OUTBOUND_TOPICS = (
    "ferry.file-events.v1",
    "ferry.tenant-events.v1",
    "ferry.billing-commands.v1",
    "ferry.notifications.v1",
)
DLQ_TOPIC = "ferry.dlq.v1"

START_TIMEOUT = 120.0


# Set in the processes that coverage measures (`make test`, pyproject's [tool.coverage.run]):
# COVERAGE_PROCESS_CONFIG / _START (a Python process that inherits one is measured too,
# through the .pth file coverage installs), COVERAGE_RUN and the rest of coverage's own.
COVERAGE_PREFIX = "COVERAGE_"


def _unmeasured(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without coverage's variables: a service the stack starts (from a test, too)
    outlives the measured run and is neither measured nor slowed by it."""
    return {k: v for k, v in environ.items() if not k.startswith(COVERAGE_PREFIX)}


class StackError(RuntimeError):
    """The stack could not be brought to the state asked for."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None
    running: bool
    answering: bool


def stack_home() -> Path:
    return Path(os.environ.get("FERRY_HOME", Path.cwd() / ".ferry")).resolve()


def _free_port(preferred: int, taken: set[int]) -> int:
    for candidate in (preferred, 0):
        if candidate in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
            if port not in taken:
                return port
    raise StackError(f"no free port near {preferred}")


class Stack:
    """The local stack rooted at `home`."""

    def __init__(self, home: Path | None = None, services: tuple[Service, ...] = SERVICES):
        self.home = home or stack_home()
        self.services = services
        self.run_dir = self.home / "run"
        self.env_file = self.home / "stack.env"

    # -- state -----------------------------------------------------------

    def _ports(self) -> dict[str, int]:
        path = self.home / "ports.json"
        ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        missing = [n for s in self.services for n in s.port_names if n not in ports]
        if missing:
            taken = set(ports.values())
            for name in missing:
                ports[name] = _free_port(PREFERRED_PORTS.get(name, 0), taken)
                taken.add(ports[name])
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(ports, indent=2, sort_keys=True))
        return ports

    def context(self) -> Context:
        return Context(data=self.home / "data", logs=self.home / "logs", ports=self._ports())

    def _pid_file(self, service: Service) -> Path:
        return self.run_dir / f"{service.name}.json"

    def _process(self, service: Service) -> psutil.Process | None:
        """The process this stack started for `service`, if it still runs."""
        path = self._pid_file(service)
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        try:
            proc = psutil.Process(record["pid"])
            # A pid can be reused by an unrelated process: the start time tells.
            if abs(proc.create_time() - record["started"]) > 1 or not proc.is_running():
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    # -- commands ----------------------------------------------------------

    def up(self, partitions: int = 6) -> list[ServiceStatus]:
        """Start what is not running, wait until all answer, create topics."""
        ctx = self.context()
        for service in self.services:
            reason = service.missing()
            if reason:
                raise StackError(f"{service.name}: {reason}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ctx.logs.mkdir(parents=True, exist_ok=True)
        for service in self.services:
            if self._process(service) is None:
                self._start(service, ctx)
        self._wait_healthy(ctx)
        for service in self.services:
            after = getattr(service, "after_start", None)
            if after is not None:
                after(ctx)
        self._write_env(ctx)
        asyncio.run(ensure_topics(self.kafka_bootstrap(ctx), partitions))
        return self.status()

    def _start(self, service: Service, ctx: Context) -> None:
        (ctx.data).mkdir(parents=True, exist_ok=True)
        service.prepare(ctx)
        cwd = service.cwd(ctx)
        cwd.mkdir(parents=True, exist_ok=True)
        log = (ctx.logs / f"{service.name}.log").open("ab")
        proc = subprocess.Popen(
            service.command(ctx),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=service.user,
            env={**_unmeasured(os.environ), **service.env_extra},
        )
        log.close()
        record = {"pid": proc.pid, "started": psutil.Process(proc.pid).create_time()}
        self._pid_file(service).write_text(json.dumps(record))

    def _wait_healthy(self, ctx: Context, services: list[Service] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(self.services if services is None else services)
        while pending:
            for service in list(pending):
                if self._process(service) is None:
                    log = ctx.logs / f"{service.name}.log"
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise StackError(f"{service.name} exited during start-up:\n{tail}")
                if service.healthy(ctx):
                    pending.remove(service)
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise StackError(f"not answering after {START_TIMEOUT:.0f}s: {names}")
            if pending:
                time.sleep(0.25)

    def _write_env(self, ctx: Context) -> None:
        lines = [f"FERRY_LOCAL_STORAGE_ROOT={self.home / 'storage'}"]
        (self.home / "storage").mkdir(parents=True, exist_ok=True)
        for service in self.services:
            lines.extend(f"{key}={value}" for key, value in service.env(ctx).items())
        self.env_file.write_text("\n".join(lines) + "\n")

    def kafka_bootstrap(self, ctx: Context) -> str:
        return f"127.0.0.1:{ctx.port('kafka')}"

    def down(self) -> list[str]:
        """Stop exactly the processes this stack started; return their names."""
        stopped = []
        for service in reversed(self.services):
            proc = self._process(service)
            if proc is not None:
                _terminate(proc, service.stop_signal, service.stop_timeout)
                stopped.append(service.name)
            self._pid_file(service).unlink(missing_ok=True)
        return stopped

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        names = ", ".join(s.name for s in self.services)
        raise StackError(f"no service {name!r} in the stack (it has {names})")

    def stop_service(self, name: str, sig: int | None = None) -> bool:
        """Stop one service (to see how Ferry copes without it); `start_service` or `up`
        starts it again on the same port and data.

        `sig`: the signal to stop it with, in place of its own clean one: `SIGKILL` for
        a crash, `SIGQUIT` for Postgres' immediate shutdown.
        """
        service = self.service(name)
        proc = self._process(service)
        if proc is not None:
            if sig == signal.SIGKILL:
                for member in [proc, *_family(proc)]:
                    with contextlib.suppress(psutil.Error):
                        member.kill()
                psutil.wait_procs([proc], timeout=10)
            else:
                _terminate(proc, sig or service.stop_signal, service.stop_timeout)
        self._pid_file(service).unlink(missing_ok=True)
        return proc is not None

    def pause_service(self, name: str, paused: bool = True) -> bool:
        """Freeze one service (SIGSTOP) or thaw it (SIGCONT): it keeps its connections and
        its memory but answers nothing meanwhile, as a hung host does. For a service whose
        data lives only in memory (moto), the one way to take it away and keep its data."""
        proc = self._process(self.service(name))
        if proc is None:
            return False
        for member in [proc, *_family(proc)]:
            with contextlib.suppress(psutil.Error):
                member.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)
        return True

    def start_service(self, name: str) -> bool:
        """Start one service if it is not running and wait until it answers; the others
        are left as they are (`up` starts all of them)."""
        service = self.service(name)
        if self._process(service) is not None:
            return False
        ctx = self.context()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ctx.logs.mkdir(parents=True, exist_ok=True)
        self._start(service, ctx)
        self._wait_healthy(ctx, [service])
        after = getattr(service, "after_start", None)
        if after is not None:
            after(ctx)
        self._write_env(ctx)
        return True

    def reset(self) -> None:
        """Stop the stack and wipe its data, logs and ports."""
        self.down()
        if self.home.exists():
            shutil.rmtree(self.home)

    def status(self) -> list[ServiceStatus]:
        ctx = self.context()
        result = []
        for service in self.services:
            proc = self._process(service)
            result.append(
                ServiceStatus(
                    name=service.name,
                    address=service.address(ctx),
                    pid=proc.pid if proc else None,
                    running=proc is not None,
                    answering=proc is not None and service.healthy(ctx),
                )
            )
        return result


def _family(proc: psutil.Process) -> Iterator[psutil.Process]:
    try:
        yield from proc.children(recursive=True)
    except psutil.Error:
        return


def _terminate(proc: psutil.Process, sig: int, timeout: float = 30.0) -> None:
    family = [proc, *_family(proc)]
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for leftover in alive:
        try:
            leftover.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


async def ensure_topics(bootstrap: str, partitions: int = 6) -> None:
    """Create the topics of the contract that do not exist yet."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + 60
    while True:
        try:
            await admin.start()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(t, partitions, 1) for t in INBOUND_TOPICS]
        wanted += [NewTopic(t, 3, 1) for t in OUTBOUND_TOPICS]
        wanted.append(NewTopic(DLQ_TOPIC, 1, 1))
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()
