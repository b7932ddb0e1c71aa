"""Where each inbound event goes: the whole mapping in one table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from ferry.activities.storage import StorageRef
from ferry.workflows.file_upload import FileUploadInput

Event = dict[str, Any]

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
FILE_ID = SearchAttributeKey.for_keyword("FileId")


class Action(StrEnum):
    START = "start"
    SIGNAL = "signal"
    SIGNAL_WITH_START = "signal-with-start"


class Queue(StrEnum):
    """Logical task queues; the settings name the real ones."""

    FILES = "files"


@dataclass(frozen=True)
class Route:
    action: Action
    workflow: str
    workflow_id: Callable[[Event], str]
    queue: Queue
    to_input: Callable[[Event], Any]
    summary: Callable[[Event], str]
    signal: str | None = None

    def search_attributes(self, event: Event) -> TypedSearchAttributes:
        pairs = [SearchAttributePair(TENANT_ID, str(event["tenant_id"]))]
        if event.get("file_id"):
            pairs.append(SearchAttributePair(FILE_ID, str(event["file_id"])))
        return TypedSearchAttributes(pairs)


def _file_upload_input(event: Event) -> FileUploadInput:
    storage = event["storage"]
    return FileUploadInput(
        event_id=event["event_id"],
        tenant_id=event["tenant_id"],
        file_id=event["file_id"],
        filename=event["filename"],
        declared_content_type=event["declared_content_type"],
        size_bytes=event["size_bytes"],
        storage=StorageRef(storage["provider"], storage["bucket"], storage["key"]),
        uploaded_by=event["uploaded_by"],
        sha256=event.get("sha256"),
        correlation_id=event.get("correlation_id"),
    )


ROUTES: dict[str, Route] = {
    "file.uploaded": Route(
        action=Action.START,
        workflow="file_upload_workflow",
        workflow_id=lambda e: f"file-upload/{e['tenant_id']}/{e['file_id']}",
        queue=Queue.FILES,
        to_input=_file_upload_input,
        summary=lambda e: f"upload of file {e['file_id']} for tenant {e['tenant_id']}",
    ),
}
