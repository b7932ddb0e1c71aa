"""file_migration_workflow: its input (the workflow itself is built on it)."""

from __future__ import annotations

from dataclasses import dataclass

WORKFLOW = "file_migration_workflow"


def workflow_id(tenant_id: str, migration_id: str) -> str:
    return f"file-migration/{tenant_id}/{migration_id}"


@dataclass
class BucketRef:
    provider: str
    bucket: str


@dataclass
class MigrationRequest:
    """A `file.migration_requested` event."""

    event_id: str
    tenant_id: str
    migration_id: str
    source: BucketRef
    target: BucketRef
    prefix: str | None = None
    batch_size: int = 100
    delete_source: bool = False
    correlation_id: str | None = None
