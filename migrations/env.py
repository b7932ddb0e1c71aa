"""Alembic environment for Ferry (async, asyncpg).

Options, from the strongest:
- URL: `-x url=...`, the `url` attribute of the Config (`ferry db --url`), the
  settings' admin URL (`FERRY_DATABASE_ADMIN_URL`, or `.ferry/stack.env`).
- Application role: `-x app_role=...`, the `app_role` attribute,
  `FERRY_DATABASE_APP_ROLE`, `ferry_app`. Revisions read it from
  `context.config.attributes["app_role"]` to grant it access.
- A caller may pass an open connection as the `connection` attribute.
"""

from __future__ import annotations

import asyncio
import os
import re
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ferry.db.models import Base

config = context.config
target_metadata = Base.metadata

DEFAULT_APP_ROLE = "ferry_app"
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Serialises concurrent `upgrade`s of one database (two test runs, two deploys).
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('ferry.migrations'))"

if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    url = x_args.get("url") or config.attributes.get("url")
    if url:
        return str(url)
    from ferry.config import get_settings

    return get_settings().database_admin_url.get_secret_value()


def _app_role() -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    role = (
        x_args.get("app_role")
        or config.attributes.get("app_role")
        or os.environ.get("FERRY_DATABASE_APP_ROLE")
        or DEFAULT_APP_ROLE
    )
    if ROLE_NAME.fullmatch(role) is None:
        raise ValueError(f"not a plain role name: {role!r}")
    return str(role)


config.attributes["app_role"] = _app_role()


def run_migrations_offline() -> None:
    """Emit the SQL instead of running it (`alembic upgrade head --sql`)."""
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        connection.execute(text(MIGRATION_LOCK))
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(_database_url(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
