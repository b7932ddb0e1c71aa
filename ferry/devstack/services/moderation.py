"""Ferry's moderation service (`ferry moderator`), which holds the moderation model for
the workers, as clamd holds the signatures."""

from __future__ import annotations

from collections.abc import Mapping

from ferry.devstack.services.base import Context, Service, http_status, venv_bin


class ModerationService(Service):
    """`ferry moderator` on loopback; the env file points the workers at it."""

    def __init__(self) -> None:
        super().__init__("moderator", ("moderator",), stop_timeout=10.0)

    def command(self, ctx: Context) -> list[str]:
        return [venv_bin("ferry"), "moderator", "--port", str(ctx.port("moderator"))]

    def healthy(self, ctx: Context) -> bool:
        return http_status(ctx.port("moderator"), "/health") == 200

    def env(self, ctx: Context) -> Mapping[str, str]:
        return {"FERRY_MODERATION_URL": f"http://127.0.0.1:{ctx.port('moderator')}"}
