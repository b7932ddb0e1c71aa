"""`ferry db`: database migrations, run as the owning role (never the application's)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from alembic.util import CommandError

from ferry.db import migrate

db_app = typer.Typer(help="Database migrations (Alembic), as the owner.", no_args_is_help=True)

Url = Annotated[
    str | None,
    typer.Option(
        "--url", help="Database URL (default: the settings' admin URL).", show_default=False
    ),
]
AppRole = Annotated[
    str | None,
    typer.Option(
        "--app-role",
        help="Role granted access (default: FERRY_DATABASE_APP_ROLE or ferry_app).",
        show_default=False,
    ),
]


def _run(action: str, revision: str, url: str | None, app_role: str | None) -> None:
    # alembic.ini's logging only where nobody configured logging yet (not under a test runner).
    configure_logging = not logging.getLogger().handlers
    config = migrate.alembic_config(url=url, app_role=app_role, configure_logging=configure_logging)
    try:
        if action == "upgrade":
            migrate.upgrade(config, revision)
        else:
            migrate.downgrade(config, revision)
    except CommandError as exc:
        typer.echo(f"{action} failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"database: {action} to {revision} done")


@db_app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: Url = None,
    app_role: AppRole = None,
) -> None:
    """Upgrade the database to REVISION (default: head)."""
    _run("upgrade", revision, url, app_role)


@db_app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")] = "-1",
    url: Url = None,
    app_role: AppRole = None,
) -> None:
    """Downgrade the database to REVISION (default: one step back; `base` removes everything)."""
    _run("downgrade", revision, url, app_role)
