"""What every service of the local stack is: a program, its ports, its files."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def cache_dir() -> Path:
    """Downloads shared by every checkout: Kafka's jars, Azurite."""
    return Path(os.environ.get("FERRY_CACHE_DIR", Path.home() / ".cache" / "ferry"))


def venv_bin(name: str) -> str:
    """A console script installed beside the running interpreter."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass
class Context:
    """Where a service keeps its files and which ports it was given."""

    data: Path
    logs: Path
    ports: dict[str, int]

    def port(self, name: str) -> int:
        return self.ports[name]


@dataclass
class Service:
    """One program of the stack."""

    name: str
    port_names: tuple[str, ...]
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0
    user: str | None = None
    env_extra: dict[str, str] = field(default_factory=dict)

    def prepare(self, ctx: Context) -> None:
        """First-start initialisation (formatting, configuration files)."""

    def command(self, ctx: Context) -> list[str]:
        raise NotImplementedError

    def cwd(self, ctx: Context) -> Path:
        return ctx.data / self.name

    def address(self, ctx: Context) -> str:
        return f"127.0.0.1:{ctx.port(self.port_names[0])}"

    def healthy(self, ctx: Context) -> bool:
        return tcp_open(ctx.port(self.port_names[0]))

    def env(self, ctx: Context) -> Mapping[str, str]:
        """Entries this service contributes to the stack's env file."""
        return {}

    def missing(self) -> str | None:
        """Why this service cannot start on this machine, if it cannot."""
        return None


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def http_status(port: int, path: str = "/") -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def reload(port: int) -> None:
    """Ask a Prometheus (or Alertmanager) on `port` to read its configuration again."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/-/reload")
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"reload refused ({response.status}): {response.read()[:300]!r}")
    finally:
        conn.close()
