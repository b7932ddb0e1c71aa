"""file_quarantine_workflow: a processed file found infected after the fact, taken out of use.

The rescan starts one as its child for each file that newer signatures find
infected. It moves the object to the tenant's part of the quarantine bucket,
records the file as quarantined (`infected`, with the signature), ends every
active share of the file by signalling the share's workflow (which records the
revocation and emits `file.share_revoked`), and emits `file.quarantined`. Its ID
names the file, so a file is quarantined once however many rescans find it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import (
        ActiveShares,
        ActiveSharesQuery,
        DatabaseActivities,
        FileRejectedInput,
        RevokeShareInput,
    )
    from ferry.contracts.convert import build
    from ferry.contracts.enums import RejectionReason
    from ferry.contracts.errors import OBJECT_NOT_FOUND
    from ferry.contracts.events import FileQuarantined
    from ferry.contracts.layout import quarantine_key
    from ferry.contracts.storage import StorageRef
    from ferry.contracts.workflows import FILE_QUARANTINE as WORKFLOW
    from ferry.contracts.workflows import (
        SHARE_REVOKE_SIGNAL,
        ShareRevocation,
        file_share_id,
    )
    from ferry.workflows.common import Staged, call_db, emit, tenant_policy
    from ferry.workflows.upload_steps import move

SOURCE = "ferry.rescan"
# Who ended the shares, as `file.share_revoked` and the share's row say.
REVOKED_BY = "ferry:quarantine"


@dataclass
class QuarantineInput:
    tenant_id: str
    file_id: str
    storage: StorageRef
    signature: str
    signature_version: int
    sha256: str | None = None
    previous_verdict_at: datetime | None = None
    correlation_id: str | None = None


@dataclass
class QuarantineOutcome:
    storage: StorageRef | None  # where the object is now (None: it was gone already)
    shares_revoked: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


@workflow.defn(name=WORKFLOW)
class FileQuarantineWorkflow(Staged):
    """Quarantines one processed file that newer signatures found infected.

    Queries: `progress` (the current stage).
    """

    @workflow.run
    async def run(self, request: QuarantineInput) -> QuarantineOutcome:
        self._enter("moving to quarantine")
        policy = await tenant_policy()
        stored: StorageRef | None
        try:
            stored = await move(
                request.storage,
                policy.quarantine_bucket,
                quarantine_key(request.tenant_id, request.file_id),
                owner=request.tenant_id,
            )
        except ActivityError as err:
            if not OBJECT_NOT_FOUND.caused(err):
                raise
            stored = None  # deleted meanwhile: the record and the shares still change
        self._enter("recording")
        detail = f"clamd found {request.signature} (signature version {request.signature_version})"
        await call_db(
            DatabaseActivities.record_file_rejected,
            build(
                FileRejectedInput,
                request,
                reason=RejectionReason.INFECTED,
                detail=detail,
                storage=stored,
                quarantined=True,
            ),
        )
        self._enter("ending shares")
        outcome = QuarantineOutcome(stored)
        shares: ActiveShares = await call_db(
            DatabaseActivities.list_active_shares,
            ActiveSharesQuery(request.tenant_id, request.file_id),
        )
        for share_id in shares.share_ids:
            await self._end_share(request, share_id)
            outcome.shares_revoked.append(share_id)
        self._enter("publishing")
        previous = request.previous_verdict_at
        event_id = await emit(
            FileQuarantined(
                file_id=request.file_id,
                signature=request.signature,
                signature_version=request.signature_version,
                previous_verdict_at=None if previous is None else int(previous.timestamp() * 1000),
                sha256=request.sha256,
                shares_revoked=len(outcome.shares_revoked),
            ),
            tenant_id=request.tenant_id,
            source=SOURCE,
            correlation_id=request.correlation_id,
        )
        outcome.events.append(event_id)
        self._enter("quarantined")
        return outcome

    async def _end_share(self, request: QuarantineInput, share_id: str) -> None:
        """Signal the share's workflow to revoke it; a share whose workflow is gone ends
        in the database alone (no workflow holds its grant any more)."""
        handle = workflow.get_external_workflow_handle(file_share_id(request.tenant_id, share_id))
        revocation = ShareRevocation(
            event_id=f"{workflow.info().workflow_id}/{share_id}",
            share_id=share_id,
            revoked_by=REVOKED_BY,
        )
        try:
            await handle.signal(SHARE_REVOKE_SIGNAL, revocation)
        except FailureError:  # no such workflow (ended, or never started)
            await call_db(
                DatabaseActivities.revoke_share,
                RevokeShareInput(request.tenant_id, share_id, revoked_by=REVOKED_BY),
            )
