"""file_sharing_workflow: its input and signals (the workflow itself is built on these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WORKFLOW = "file_sharing_workflow"
REVOKE_SIGNAL = "share_revocation_requested"


def workflow_id(tenant_id: str, share_id: str) -> str:
    return f"file-share/{tenant_id}/{share_id}"


@dataclass
class ShareRequest:
    """A `file.share_requested` event."""

    event_id: str
    tenant_id: str
    share_id: str
    file_id: str
    shared_by: str
    grantee_type: str  # user | email | tenant | public_link
    permission: str  # view | download | edit
    notify: bool = False
    grantee: str | None = None
    expires_at: datetime | None = None
    message: str | None = None
    correlation_id: str | None = None


@dataclass
class ShareRevocation:
    """A `file.share_revocation_requested` event, sent to the share's workflow as a signal."""

    event_id: str
    share_id: str
    revoked_by: str
