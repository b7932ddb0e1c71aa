"""Alembic, run programmatically: the configuration and the upgrade/downgrade commands.

The database URL defaults to the settings' admin URL (read by `migrations/env.py`);
the application role that the migrations grant access to defaults to
`FERRY_DATABASE_APP_ROLE` or `ferry_app`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def find_config_file() -> Path:
    """`alembic.ini` in the working directory, else the one at the repository root."""
    for candidate in (Path.cwd() / "alembic.ini", REPO_ROOT / "alembic.ini"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("alembic.ini not found in the working directory or the repository")


def alembic_config(
    *,
    url: str | None = None,
    app_role: str | None = None,
    ini: Path | None = None,
    configure_logging: bool = True,
) -> Config:
    """An Alembic `Config` whose `script_location` does not depend on the working directory."""
    path = (ini or find_config_file()).resolve()
    config = Config(str(path))
    location = Path(config.get_main_option("script_location") or "migrations")
    if not location.is_absolute():
        config.set_main_option("script_location", str(path.parent / location))
    # Attributes, not ini options: a URL with a password must not pass through
    # configparser interpolation or end up in a file.
    if url is not None:
        config.attributes["url"] = url
    if app_role is not None:
        config.attributes["app_role"] = app_role
    config.attributes["configure_logging"] = configure_logging
    return config


def upgrade(config: Config, revision: str = "head") -> None:
    command.upgrade(config, revision)


def downgrade(config: Config, revision: str = "-1") -> None:
    command.downgrade(config, revision)


def current(config: Config) -> None:
    command.current(config)
