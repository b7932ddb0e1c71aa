"""Ferry's codec endpoint, so the Temporal UI can show encrypted payloads."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from pathlib import Path

from ferry.devstack.services.base import (
    Context,
    Service,
    http_status,
    venv_bin,
)


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
