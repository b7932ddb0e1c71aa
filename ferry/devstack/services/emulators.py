"""The storage emulators: moto (S3), gcp-storage-emulator (GCS), Azurite (Azure Blob)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from ferry.devstack.services.base import (
    Context,
    Service,
    cache_dir,
    http_status,
    venv_bin,
)

AZURITE_VERSION = "3.37.0"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


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
