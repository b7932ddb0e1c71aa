"""The Temporal UI, in headless Chromium: find a tenant's upload and read its decrypted input.

Debian's `chromium`, driven by Playwright (its Python package, with the
browser's path given: nothing is downloaded). The page fetches the input from
the server encrypted and decrypts it through the stack's codec endpoint. A
screenshot of the workflow page is saved in `test-artifacts/`.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import async_playwright, expect

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.demo import stage_upload
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage

pytestmark = pytest.mark.stack

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, and on a machine without the wider network: no sandbox, no background calls.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


async def test_the_ui_finds_an_upload_by_tenant_and_shows_its_decrypted_input(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    tenant: str,
) -> None:
    filename = f"ui-{uuid.uuid4().hex[:10]}.txt"
    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, filename, "text/plain", b"seen in the UI\n"
    )
    await publisher.publish(upload, topic="ferry.uploads.v1")
    [processed] = await file_events.wait_for(lambda e: e.get("file_id") == upload["file_id"])
    assert processed["event_type"] == "file.processed"
    workflow_id = f"file-upload/{tenant}/{upload['file_id']}"

    ARTIFACTS.mkdir(exist_ok=True)
    ui = f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            query = quote(f'TenantId="{tenant}"')
            await page.goto(f"{ui}/workflows?query={query}")
            link = page.get_by_role("link", name=workflow_id)
            await expect(link).to_be_visible(timeout=30_000)
            # The filter leaves this tenant's workflows only: its upload.
            assert await page.get_by_role("link", name="file-upload/", exact=False).count() == 1
            await link.click()
            # The input is shown decrypted: the filename is in it.
            await expect(page.get_by_text(filename).first).to_be_visible(timeout=30_000)
            await page.screenshot(path=ARTIFACTS / "ui-file-upload.png", full_page=True)
        finally:
            await browser.close()
