"""The chaos run's traffic: what upstream services, buckets and the billing system send,
at a steady rate, in a mix that looks like production, and what each should become.

Every record sent is remembered with its expected fate (`Sent`), for the checker.
Publishing waits out a Kafka outage (an upstream service retries too); a record
whose publish was retried may be on Kafka twice, which the checker allows (the same
event twice is one workflow run and one outcome).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from ferry.contracts.topics import STORAGE_NOTIFICATIONS, inbound_topic_for
from ferry.contracts.workflows import (
    file_migration_id,
    file_share_id,
    file_upload_id,
    tenant_provisioning_id,
    tenant_upgrade_id,
)
from ferry.demo import EICAR
from ferry.producers import EventPublisher
from ferry.storage import StorageProvider

T = TypeVar("T")
S3_NOTIFICATION = (
    Path(__file__).parent.parent / "tests/unit/notifications/s3_aws_lambda_go_put_png.json"
)
PROVIDERS = ("local", "local", "s3", "gcs", "azure")


@dataclass
class Sent:
    """One thing sent, and what it should become."""

    kind: str
    tenant: str
    expect: str  # processed | rejected:<reason> | dlq | provisioned | decided | shared | ...
    at: float
    event: dict[str, Any] | None = None
    workflow_id: str | None = None
    raw: bytes | None = None  # what a dead letter must carry (poison, notifications)
    extra: dict[str, Any] = field(default_factory=dict)


def envelope(event_type: str, tenant: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": datetime.now(UTC),
        "tenant_id": tenant,
        "correlation_id": None,
        "source": "bench.chaos",
        **fields,
    }


def owner(tenant: str) -> str:
    return f"owner@{tenant}.example"


def png(seed: int) -> bytes:
    image = Image.new("RGB", (64 + seed % 64, 48), (seed % 256, 80, 160))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def patiently(call: Callable[[], Awaitable[T]], limit: float = 300.0) -> T:
    """Retry `call` (a publish, a write to a bucket) while its service is away."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_fixed(1.0),
        stop=stop_after_delay(limit),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: the last attempt re-raises")


class Traffic:
    """Sends the mix, and answers the billing system's charge requests."""

    def __init__(
        self,
        publisher: EventPublisher,
        storage: dict[str, StorageProvider],
        ingest_bucket: str,
        run: str,
        seed: int,
        started: float,
    ) -> None:
        self.publisher = publisher
        self.storage = storage
        self.ingest = ingest_bucket
        self.run = run
        self.rng = random.Random(seed)
        self.started = started
        self.sent: list[Sent] = []
        self.tenants: list[str] = []  # provisioned and taking uploads
        self.free: list[str] = []  # not upgraded yet
        self.processed: dict[str, list[str]] = {}  # tenant -> file IDs seen processed
        self.shares: list[tuple[str, str]] = []  # (tenant, share_id) active
        self.migrating: str | None = None
        self.counter = 0

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def remember(self, sent: Sent) -> Sent:
        self.sent.append(sent)
        return sent

    async def publish(self, event: dict[str, Any]) -> None:
        topic = inbound_topic_for(event["event_type"])
        await patiently(lambda: self.publisher.publish(event, topic=topic))

    async def send_raw(self, topic: str, value: bytes, key: str) -> None:
        await patiently(lambda: self.publisher.send_raw(topic, value, key.encode(), []))

    # -- tenants -----------------------------------------------------------

    async def create_tenant(self, provider: str | None = None) -> str:
        self.counter += 1
        tenant = f"{self.run}-t{self.counter}"
        provider = provider or self.rng.choice(PROVIDERS)
        event = envelope(
            "tenant.creation_requested",
            tenant,
            name=f"Chaos tenant {self.counter}",
            plan="free",
            region="local",
            admin_email=owner(tenant),
            storage_provider=provider,
        )
        self.remember(
            Sent("tenant", tenant, "provisioned", self.now(), event, tenant_provisioning_id(tenant))
        )
        await self.publish(event)
        return tenant

    async def _new_tenant(self) -> None:
        await self.create_tenant()

    def provisioned(self, tenant: str) -> None:
        if tenant not in self.tenants:
            self.tenants.append(tenant)
            self.free.append(tenant)

    async def upgrade(self) -> None:
        candidates = [t for t in self.free if t != self.migrating]
        if not candidates:
            return
        tenant = self.rng.choice(candidates)
        self.free.remove(tenant)
        upgrade_id = f"up-{uuid.uuid4().hex[:8]}"
        event = envelope(
            "tenant.upgrade_requested",
            tenant,
            upgrade_id=upgrade_id,
            from_plan="free",
            to_plan="pro",
            requested_by=owner(tenant),
        )
        workflow_id = tenant_upgrade_id(tenant, upgrade_id)
        self.remember(Sent("upgrade", tenant, "decided", self.now(), event, workflow_id))
        await self.publish(event)

    async def pay(self, charge: dict[str, Any]) -> None:
        """The billing system's answer to a charge: paid, refused, paid twice (the same
        event repeated), or contradicted (refused, then paid: the first decides)."""
        tenant, upgrade_id = charge["tenant_id"], charge["upgrade_id"]
        kind = self.rng.choices(["paid", "refused", "repeated", "contradicted"], [6, 2, 1, 1])[0]

        def result(succeeded: bool) -> dict[str, Any]:
            if succeeded:
                return envelope(
                    "billing.payment_succeeded",
                    tenant,
                    payment_id=f"pay-{uuid.uuid4().hex[:8]}",
                    upgrade_id=upgrade_id,
                    amount_minor=charge["amount_minor"],
                    currency=charge["currency"],
                )
            return envelope(
                "billing.payment_failed",
                tenant,
                payment_id=f"pay-{uuid.uuid4().hex[:8]}",
                upgrade_id=upgrade_id,
                reason="card declined",
            )

        first = result(kind in ("paid", "repeated"))
        events = {
            "paid": [first],
            "refused": [first],
            "repeated": [first, first],
            "contradicted": [first, result(True)],
        }[kind]
        for event in events:
            self.remember(
                Sent(
                    f"payment-{kind}",
                    tenant,
                    "signal",
                    self.now(),
                    event,
                    tenant_upgrade_id(tenant, upgrade_id),
                    extra={"decides": event is first, "succeeded": kind in ("paid", "repeated")},
                )
            )
            await self.publish(event)

    # -- files -------------------------------------------------------------

    def _uploader(self) -> str | None:
        tenants = [t for t in self.tenants if t != self.migrating]
        return self.rng.choice(tenants) if tenants else None

    async def _stage(
        self, provider: str, tenant: str, filename: str, data: bytes
    ) -> tuple[str, str]:
        file_id = str(uuid.uuid4())
        key = f"tenants/{tenant}/uploads/{file_id}/{filename}"
        store = self.storage[provider]

        async def chunks() -> Any:
            yield data

        await patiently(lambda: store.write(self.ingest, key, chunks()))
        return file_id, key

    def _upload_event(
        self, tenant: str, file_id: str, key: str, filename: str, declared: str, data: bytes
    ) -> dict[str, Any]:
        return envelope(
            "file.uploaded",
            tenant,
            file_id=file_id,
            filename=filename,
            declared_content_type=declared,
            size_bytes=len(data),
            storage={"provider": "local", "bucket": self.ingest, "key": key},
            sha256=hashlib.sha256(data).hexdigest(),
            uploaded_by=owner(tenant),
        )

    async def upload(self, kind: str) -> None:
        tenant = self._uploader()
        if tenant is None:
            return
        self.counter += 1
        n = self.counter
        filename, declared, data, expect = {
            "text": (f"notes-{n}.txt", "text/plain", f"chaos {n}\n".encode(), "processed"),
            "png": (f"pic-{n}.png", "image/png", png(n), "processed"),
            "infected": (f"invoice-{n}.pdf.exe", "application/octet-stream", EICAR, "infected"),
            "mismatch": (f"report-{n}.pdf", "application/pdf", png(n), "invalid_type"),
            "twice": (f"twice-{n}.txt", "text/plain", f"twice {n}\n".encode(), "processed"),
        }[kind]
        expect = expect if expect == "processed" else f"rejected:{expect}"
        file_id, key = await self._stage("local", tenant, filename, data)
        event = self._upload_event(tenant, file_id, key, filename, declared, data)
        workflow_id = file_upload_id(tenant, file_id)
        self.remember(
            Sent(f"upload-{kind}", tenant, expect, self.now(), event, workflow_id,
                 extra={"file_id": file_id})
        )  # fmt: skip
        await self.publish(event)
        if kind == "twice":
            await asyncio.sleep(self.rng.uniform(0, 2))
            await self.publish(event)

    async def upload_notified(self) -> None:
        """A PNG put in S3's ingest bucket and announced by S3's own notification."""
        tenant = self._uploader()
        if tenant is None:
            return
        self.counter += 1
        data = png(self.counter)
        file_id, key = await self._stage("s3", tenant, f"shot {self.counter}.png", data)
        document = json.loads(S3_NOTIFICATION.read_text())
        obj = document["Records"][0]["s3"]["object"]
        obj.update(key=key.replace(" ", "+"), size=len(data), versionId=uuid.uuid4().hex)
        obj["urlDecodedKey"] = key
        document["Records"][0]["s3"]["bucket"]["name"] = self.ingest
        value = json.dumps(document).encode()
        self.remember(
            Sent("upload-notified", tenant, "processed", self.now(), None,
                 file_upload_id(tenant, file_id), raw=value, extra={"file_id": file_id})
        )  # fmt: skip
        await self.send_raw(STORAGE_NOTIFICATIONS, value, tenant)

    async def upload_outside(self) -> None:
        """An upload that names another tenant's object: refused at the door (DLQ)."""
        if len(self.tenants) < 2:
            return
        tenant, victim = self.rng.sample(self.tenants, 2)
        file_id, key = await self._stage("local", victim, "secret.txt", b"not yours\n")
        event = self._upload_event(tenant, file_id, key, "secret.txt", "text/plain", b"x")
        self.remember(
            Sent("upload-outside", tenant, "dlq", self.now(), event,
                 extra={"reason": "storage key outside the tenant's upload prefix"})
        )  # fmt: skip
        await self.publish(event)

    async def poison(self) -> None:
        kind = self.rng.choice(["not-avro", "unknown-type", "unknown-tenant"])
        marker = uuid.uuid4().hex
        if kind == "not-avro":
            value = f"\x00\x01 not avro {marker}".encode()
            self.remember(Sent("poison-not-avro", "-", "dlq", self.now(), raw=value))
            await self.send_raw("ferry.uploads.v1", value, "poison")
        elif kind == "unknown-type":
            value = json.dumps({"event_type": "file.exploded", "marker": marker}).encode()
            self.remember(Sent("poison-unknown-type", "-", "dlq", self.now(), raw=value))
            await patiently(
                lambda: self.publisher.send_raw(
                    "ferry.file-commands.v1",
                    value,
                    b"poison",
                    [("content-type", b"application/json")],
                )
            )
        else:
            stranger = f"{self.run}-nobody-{marker[:6]}"
            file_id = str(uuid.uuid4())
            key = f"tenants/{stranger}/uploads/{file_id}/x.txt"
            event = self._upload_event(stranger, file_id, key, "x.txt", "text/plain", b"x")
            self.remember(
                Sent("poison-unknown-tenant", stranger, "dlq", self.now(), event,
                     extra={"reason": f"unknown tenant {stranger!r}"})
            )  # fmt: skip
            await self.publish(event)

    async def share(self) -> None:
        choices = [(t, f) for t, files in self.processed.items() for f in files]
        if not choices:
            return
        tenant, file_id = self.rng.choice(choices)
        share_id = f"sh-{uuid.uuid4().hex[:8]}"
        event = envelope(
            "file.share_requested",
            tenant,
            share_id=share_id,
            file_id=file_id,
            shared_by=owner(tenant),
            grantee_type="email",
            grantee=f"friend-{share_id}@example.org",
            permission="view",
            expires_at=datetime.now(UTC) + timedelta(hours=2),
            notify=False,
            message=None,
        )
        workflow_id = file_share_id(tenant, share_id)
        self.remember(Sent("share", tenant, "shared", self.now(), event, workflow_id))
        self.shares.append((tenant, share_id))
        await self.publish(event)

    async def revoke(self) -> None:
        if not self.shares:
            return
        tenant, share_id = self.shares.pop(self.rng.randrange(len(self.shares)))
        event = envelope(
            "file.share_revocation_requested", tenant, share_id=share_id, revoked_by=owner(tenant)
        )
        self.remember(
            Sent(
                "revocation", tenant, "revoked", self.now(), event, file_share_id(tenant, share_id)
            )
        )
        await self.publish(event)

    async def migrate(self) -> None:
        """Move one tenant's files from its local bucket to S3 (the tenant takes no new
        uploads from then on)."""
        local = [t for t in self.processed if t in self.tenants and self.processed[t]]
        if not local:
            return
        tenant = self.rng.choice(local)
        self.migrating = tenant
        migration_id = f"mig-{uuid.uuid4().hex[:8]}"
        event = envelope(
            "file.migration_requested",
            tenant,
            migration_id=migration_id,
            source_storage={"provider": "local", "bucket": f"ferry-{tenant}"},
            target={"provider": "s3", "bucket": f"ferry-{tenant}"},
            prefix="files/",
            batch_size=20,
            delete_source=False,
        )
        workflow_id = file_migration_id(tenant, migration_id)
        self.remember(Sent("migration", tenant, "migrated", self.now(), event, workflow_id))
        await self.publish(event)

    # -- the mix -----------------------------------------------------------

    async def step(self) -> None:
        actions: list[tuple[Callable[[], Awaitable[None]], int]] = [
            (lambda: self.upload("text"), 30),
            (lambda: self.upload("png"), 14),
            (lambda: self.upload("infected"), 5),
            (lambda: self.upload("mismatch"), 5),
            (lambda: self.upload("twice"), 6),
            (self.upload_notified, 10),
            (self.upload_outside, 2),
            (self.poison, 5),
            (self.share, 8),
            (self.revoke, 4),
            (self._new_tenant, 1),
            (self.upgrade, 2),
        ]
        action = self.rng.choices([a for a, _ in actions], [w for _, w in actions])[0]
        await action()
