"""PostgreSQL: a private cluster in the stack's data directory."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ferry.devstack.services.base import (
    Context,
    Service,
)

DB_USER = "ferry"
DB_PASSWORD = "ferry"
DB_NAME = "ferry"
APP_USER = "ferry_app"
APP_PASSWORD = "ferry_app"


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
