"""The services of the local stack: how each is prepared, started and checked.

Every service is a real program started as a local process on loopback. A
service's ports are chosen once, on the first `up`, and kept in the stack's
state so that data written under them (Kafka's quorum, Postgres, the Temporal
SQLite file) stays valid across `down` and `up`.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_VERSION = "4.1.1"
AZURITE_VERSION = "3.37.0"

# The EICAR test string, split so that no scanner flags this source file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMAV_TESTFILES = Path("/usr/share/clamav-testfiles")
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DB_USER = "ferry"
DB_PASSWORD = "ferry"
DB_NAME = "ferry"
APP_USER = "ferry_app"
APP_PASSWORD = "ferry_app"


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


class Kafka(Service):
    def __init__(self) -> None:
        super().__init__("kafka", ("kafka", "kafka_controller"))

    @property
    def libs(self) -> Path:
        return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"

    def missing(self) -> str | None:
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            return f"Kafka jars not in {self.libs}; run the set-up (make setup)"
        if shutil.which("java") is None:
            return "java not found; run the set-up (make setup)"
        return None

    def _config(self, ctx: Context) -> Path:
        return ctx.data / "kafka" / "server.properties"

    def prepare(self, ctx: Context) -> None:
        home = ctx.data / "kafka"
        home.mkdir(parents=True, exist_ok=True)
        port, controller = ctx.port("kafka"), ctx.port("kafka_controller")
        self._config(ctx).write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
                    f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={home / 'data'}",
                    "num.partitions=6",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        (home / "log4j2.properties").write_text(
            "\n".join(
                [
                    "rootLogger.level=WARN",
                    "rootLogger.appenderRef.stdout.ref=STDOUT",
                    "appender.stdout.type=Console",
                    "appender.stdout.name=STDOUT",
                    "appender.stdout.layout.type=PatternLayout",
                    "appender.stdout.layout.pattern=[%d] %p %m (%c)%n",
                    "logger.kafka.name=kafka.server.KafkaServer",
                    "logger.kafka.level=INFO",
                    "",
                ]
            )
        )
        if (home / "data" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        subprocess.run(
            [
                *self._java(ctx),
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self._config(ctx)),
            ],
            check=True,
            capture_output=True,
        )

    def _java(self, ctx: Context) -> list[str]:
        log4j = ctx.data / "kafka" / "log4j2.properties"
        return [
            "java",
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.libs}/*",
        ]

    def command(self, ctx: Context) -> list[str]:
        return [*self._java(ctx), "kafka.Kafka", str(self._config(ctx))]

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {"FERRY_KAFKA_BOOTSTRAP": self.address(ctx)}


# Temporal's dynamic configuration (compose.yaml mounts the same values from
# deploy/temporal/dynamicconfig.yaml). Eager activity execution: a worker that
# schedules activities on its own task queue receives them in the reply to its
# workflow task, without a trip through matching.
TEMPORAL_DYNAMIC_CONFIG: dict[str, object] = {"system.enableActivityEagerExecution": True}


class Temporal(Service):
    def __init__(self) -> None:
        super().__init__(
            "temporal", ("temporal", "temporal_ui", "temporal_http", "temporal_metrics")
        )

    def missing(self) -> str | None:
        return None if shutil.which(venv_bin("temporal")) else "temporal CLI not installed"

    def prepare(self, ctx: Context) -> None:
        (ctx.data / "temporal").mkdir(parents=True, exist_ok=True)

    def command(self, ctx: Context) -> list[str]:
        return [
            venv_bin("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(ctx.port("temporal")),
            "--ui-port",
            str(ctx.port("temporal_ui")),
            "--http-port",
            str(ctx.port("temporal_http")),
            "--metrics-port",
            str(ctx.port("temporal_metrics")),
            "--db-filename",
            str(ctx.data / "temporal" / "temporal.db"),
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            *(
                arg
                for key, value in TEMPORAL_DYNAMIC_CONFIG.items()
                for arg in ("--dynamic-config-value", f"{key}={json.dumps(value)}")
            ),
            "--search-attribute",
            "TenantId=Keyword",
            "--search-attribute",
            "FileId=Keyword",
            # The UI shows payloads decrypted through the stack's codec endpoint.
            "--ui-codec-endpoint",
            f"http://127.0.0.1:{ctx.port('codec')}",
            "--log-level",
            "warn",
        ]

    def healthy(self, ctx: Context) -> bool:
        return tcp_open(ctx.port("temporal")) and http_status(ctx.port("temporal_ui")) == 200

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {
            "FERRY_TEMPORAL_ADDRESS": self.address(ctx),
            "FERRY_TEMPORAL_UI_URL": f"http://127.0.0.1:{ctx.port('temporal_ui')}",
        }


class Postgres(Service):
    """A private cluster; as root it runs as the `postgres` system user."""

    def __init__(self) -> None:
        user = "postgres" if os.geteuid() == 0 else None
        super().__init__("postgres", ("postgres",), stop_signal=signal.SIGINT, user=user)

    def _bin(self, name: str) -> str:
        found = shutil.which(name)
        if found:
            return found
        versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        return str(versions[-1]) if versions else name

    def missing(self) -> str | None:
        return None if Path(self._bin("postgres")).exists() else "PostgreSQL not installed"

    def _run_as_owner(self, args: list[str], **kwargs: object) -> None:
        subprocess.run(args, check=True, capture_output=True, user=self.user, **kwargs)  # type: ignore[call-overload]

    def prepare(self, ctx: Context) -> None:
        home = ctx.data / "postgres"
        home.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(home, self.user, self.user)
            _let_user_traverse(home.parent)
        pgdata = home / "data"
        if (pgdata / "PG_VERSION").exists():
            return
        pwfile = home / "pwfile"
        pwfile.write_text(DB_PASSWORD + "\n")
        if self.user:
            shutil.chown(pwfile, self.user, self.user)
        self._run_as_owner(
            [
                self._bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                DB_USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )
        pwfile.unlink()

    def command(self, ctx: Context) -> list[str]:
        home = ctx.data / "postgres"
        return [
            self._bin("postgres"),
            "-D",
            str(home / "data"),
            "-p",
            str(ctx.port("postgres")),
            "-h",
            "127.0.0.1",
            "-k",
            str(home),
            "-c",
            "max_connections=200",
            "-c",
            "fsync=on",
        ]

    def healthy(self, ctx: Context) -> bool:
        probe = subprocess.run(
            [self._bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(ctx.port("postgres"))],
            check=False,
        )
        return probe.returncode == 0

    def after_start(self, ctx: Context) -> None:
        """Create the application database and role once the cluster answers (idempotent).

        Migrations run as the owner (`ferry`); the application connects as
        `ferry_app`, which owns nothing and does not bypass row-level security.
        """
        env = {**os.environ, "PGPASSWORD": DB_PASSWORD}
        base = ["-h", "127.0.0.1", "-p", str(ctx.port("postgres")), "-U", DB_USER]

        def sql(database: str, statement: str) -> str:
            psql = [self._bin("psql"), *base, "-d", database, "-v", "ON_ERROR_STOP=1"]
            done = subprocess.run(
                [*psql, "-tAc", statement], check=True, capture_output=True, text=True, env=env
            )
            return done.stdout.strip()

        if sql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'") != "1":
            subprocess.run(
                [self._bin("createdb"), *base, DB_NAME], check=True, capture_output=True, env=env
            )
        if sql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = '{APP_USER}'") != "1":
            sql("postgres", f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}' NOBYPASSRLS")
        sql(DB_NAME, f"GRANT CONNECT, TEMPORARY ON DATABASE {DB_NAME} TO {APP_USER}")

    def env(self, ctx: Context) -> Mapping[str, str]:
        at = f"{self.address(ctx)}/{DB_NAME}"
        return {
            "FERRY_DATABASE_URL": f"postgresql+asyncpg://{APP_USER}:{APP_PASSWORD}@{at}",
            "FERRY_DATABASE_ADMIN_URL": f"postgresql+asyncpg://{DB_USER}:{DB_PASSWORD}@{at}",
        }


def _let_user_traverse(path: Path) -> None:
    """Give others the search bit on `path` and its ancestors, so `postgres` reaches its data.

    Postgres refuses to run as root; as root the stack runs it as the
    `postgres` user, which must be able to walk down to the stack directory
    (a checkout under a private directory would otherwise hide it).
    """
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)


class Clamd(Service):
    """clamd on TCP with a signature database built from test signatures.

    The official database cannot be downloaded on an offline machine; the
    database here holds the EICAR string and the hashes of Debian's
    clamav-testfiles. Production runs `freshclam` instead (see the README).
    """

    def __init__(self) -> None:
        super().__init__("clamd", ("clamd",))

    def missing(self) -> str | None:
        if not Path("/usr/sbin/clamd").exists() and shutil.which("clamd") is None:
            return "clamd not installed (Debian's clamav-daemon); run the set-up"
        return None

    def prepare(self, ctx: Context) -> None:
        home = ctx.data / "clamd"
        database = home / "db"
        database.mkdir(parents=True, exist_ok=True)
        (home / "tmp").mkdir(exist_ok=True)
        build_signatures(database)
        (home / "clamd.conf").write_text(
            "\n".join(
                [
                    "Foreground yes",
                    "LogTime yes",
                    "LogVerbose no",
                    f"TCPSocket {ctx.port('clamd')}",
                    "TCPAddr 127.0.0.1",
                    f"DatabaseDirectory {database}",
                    f"TemporaryDirectory {home / 'tmp'}",
                    "MaxThreads 4",
                    "MaxQueue 64",
                    "ReadTimeout 300",
                    "CommandReadTimeout 30",
                    "SelfCheck 0",
                    # Scan files up to 1 GiB instead of skipping them, and report
                    # any file over a limit rather than passing it.
                    "StreamMaxLength 1100M",
                    "MaxFileSize 1100M",
                    "MaxScanSize 1100M",
                    "AlertExceedsMax yes",
                    "",
                ]
            )
        )

    def command(self, ctx: Context) -> list[str]:
        clamd = shutil.which("clamd") or "/usr/sbin/clamd"
        return [clamd, "--foreground", f"--config-file={ctx.data / 'clamd' / 'clamd.conf'}"]

    def healthy(self, ctx: Context) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", ctx.port("clamd")), timeout=2) as sock:
                sock.sendall(b"zPING\0")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {"FERRY_CLAMD_ADDRESS": self.address(ctx)}


def build_signatures(database: Path) -> None:
    """Write the test signature database: EICAR by content, test files by MD5."""
    (database / "ferry-eicar.ndb").write_text(f"Eicar-Test-Signature:0:*:{EICAR.hex()}\n")
    lines = []
    if CLAMAV_TESTFILES.is_dir():
        for path in sorted(CLAMAV_TESTFILES.iterdir()):
            if path.is_file():
                # ClamAV's .hdb format is keyed by MD5: a file identifier, not a security control.
                digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
                lines.append(f"{digest}:{path.stat().st_size}:ClamAV-Test-File.{path.name}")
    hdb = database / "ferry-testfiles.hdb"
    if lines:
        hdb.write_text("".join(f"{line}\n" for line in lines))
    else:
        hdb.unlink(missing_ok=True)  # clamd refuses an empty database file


class S3(Service):
    """moto in server mode: the S3 API on loopback."""

    def __init__(self) -> None:
        super().__init__("s3", ("s3",))

    def command(self, ctx: Context) -> list[str]:
        return [venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(ctx.port("s3"))]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("s3"), "/moto-api/") == 200

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": f"http://{self.address(ctx)}",
            "AWS_ACCESS_KEY_ID": "ferry-local",
            "AWS_SECRET_ACCESS_KEY": "ferry-local-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }


class GCS(Service):
    """gcp-storage-emulator: the GCS JSON API on loopback, stored on disk."""

    def __init__(self) -> None:
        super().__init__("gcs", ("gcs",))

    def prepare(self, ctx: Context) -> None:
        (ctx.data / "gcs").mkdir(parents=True, exist_ok=True)

    def command(self, ctx: Context) -> list[str]:
        return [
            venv_bin("gcp-storage-emulator"),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(ctx.port("gcs")),
            "--quiet",
        ]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("gcs"), "/storage/v1/b?project=ferry") == 200

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {"STORAGE_EMULATOR_HOST": f"http://{self.address(ctx)}"}


class Azurite(Service):
    """Azurite's blob service, from the npm registry."""

    def __init__(self) -> None:
        # Azurite closes its server and stores at once, then idles on a timer for
        # half a minute before the process exits: no need to wait for that.
        super().__init__("azurite", ("azurite",), stop_timeout=5.0)

    @property
    def main(self) -> Path:
        return (
            cache_dir() / "node" / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
        )

    def missing(self) -> str | None:
        if shutil.which("node") is None:
            return "node not found"
        return None if self.main.exists() else "Azurite not installed; run the set-up"

    def prepare(self, ctx: Context) -> None:
        (ctx.data / "azurite").mkdir(parents=True, exist_ok=True)

    def command(self, ctx: Context) -> list[str]:
        return [
            "node",
            str(self.main),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(ctx.port("azurite")),
            "--location",
            str(ctx.data / "azurite"),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("azurite"), f"/{AZURITE_ACCOUNT}?comp=list") is not None

    def env(self, ctx: Context) -> Mapping[str, str]:
        endpoint = f"http://{self.address(ctx)}/{AZURITE_ACCOUNT}"
        return {
            "AZURE_STORAGE_CONNECTION_STRING": (
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
            )
        }


class Codec(Service):
    """Ferry's codec endpoint, which the Temporal UI calls to decrypt payloads.

    The first start makes the stack's payload key; the env file hands it to
    every Ferry process (`FERRY_PAYLOAD_KEYS`).
    """

    def __init__(self) -> None:
        super().__init__("codec", ("codec",), stop_timeout=5.0)

    def keys_file(self, ctx: Context) -> Path:
        return ctx.data / "codec" / "payload-keys"

    def prepare(self, ctx: Context) -> None:
        path = self.keys_file(ctx)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # A 256-bit AES-GCM key as `FERRY_PAYLOAD_KEYS` spells it (`id:base64`); the
            # stack builds it itself, as it imports nothing of the code it runs.
            path.touch(mode=0o600)
            path.write_text(f"k1:{base64.b64encode(secrets.token_bytes(32)).decode()}\n")

    def command(self, ctx: Context) -> list[str]:
        ui = ctx.port("temporal_ui")
        return [
            venv_bin("ferry"),
            "codec-server",
            "--port",
            str(ctx.port("codec")),
            "--origin",
            f"http://127.0.0.1:{ui}",
            "--origin",
            f"http://localhost:{ui}",
            "--keys-file",
            str(self.keys_file(ctx)),
        ]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("codec"), "/health") == 200

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {
            "FERRY_PAYLOAD_KEYS": self.keys_file(ctx).read_text().strip(),
            "FERRY_CODEC_ENDPOINT": f"http://{self.address(ctx)}",
        }


SERVICES: tuple[Service, ...] = (
    Kafka(), Codec(), Temporal(), Postgres(), Clamd(), S3(), GCS(), Azurite()
)  # fmt: skip

PREFERRED_PORTS = {
    "kafka": 19092,
    "kafka_controller": 19093,
    "temporal": 17233,
    "temporal_ui": 18233,
    "temporal_http": 17243,
    "temporal_metrics": 17253,
    "codec": 18234,
    "postgres": 15432,
    "clamd": 13310,
    "s3": 15000,
    "gcs": 14443,
    "azurite": 10000,
}
