"""file_sharing_workflow: grant access to a file until the share expires or is revoked."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import (
        DatabaseActivities,
        FileRecord,
        FileRef,
        PermissionQuery,
        RevokeShareInput,
        ShareInput,
    )
    from ferry.activities.storage import SignRequest, StorageActivities
    from ferry.contracts.convert import build
    from ferry.contracts.enums import FileAction, GranteeType, SharePermission
    from ferry.contracts.events import (
        FileShared,
        FileShareExpired,
        FileShareRevoked,
        NotificationRequested,
        ShareEvent,
    )
    from ferry.contracts.workflows import FILE_SHARING as WORKFLOW
    from ferry.contracts.workflows import SHARE_REVOKE_SIGNAL as REVOKE_SIGNAL
    from ferry.contracts.workflows import ShareRequest, ShareRevocation
    from ferry.workflows.common import STORAGE_RETRY, answer, call_db
    from ferry.workflows.dedupe import SeenEvents

SOURCE = "ferry.file-sharing"
SHARED_TEMPLATE = "file-shared"
# The longest a signed URL may live on every provider (S3 and GCS allow 7 days):
# a public link without an expiry, or with a later one, expires then.
LONGEST_LINK = timedelta(days=7)

_REFUSALS = {
    "tenant_not_found": "the tenant does not exist",
    "tenant_inactive": "the tenant is not active",
    "file_not_found": "the file does not exist in this tenant",
    "file_not_ready": "the file is not processed yet",
    "file_not_clean": "the file was rejected and may not be shared",
    "not_member": "the sharer is not a member of the tenant",
    "insufficient_role": "the sharer's role may not share this file",
}


@dataclass
class ShareOutcome:
    status: str  # refused | expired | revoked
    detail: str | None = None
    expires_at: datetime | None = None
    has_link: bool = False
    events: list[str] = field(default_factory=list)


class Refused(Exception):
    """The share may not be granted; nothing is recorded and nothing grants access."""


@workflow.defn(name=WORKFLOW)
class FileSharingWorkflow:
    """Shares one file, for as long as the share lives.

    Checks that the file belongs to the tenant, is processed and clean, and that
    the sharer may share it; records the grant; for a public link, signs a URL
    from the file's provider that expires with the share (at most 7 days); asks
    for a notification when `notify` is set; emits `file.shared`. Then it waits
    on a durable timer until `expires_at` and ends the grant as expired
    (`file.share_expired`), or ends it earlier on a revocation signal
    (`file.share_revoked`). A refused share records and emits nothing.

    Queries: `status`. Signals: `share_revocation_requested` (repeats ignored).
    """

    def __init__(self) -> None:
        self._status = "checking"
        self._revocation: ShareRevocation | None = None
        self._seen = SeenEvents()

    @workflow.query
    def status(self) -> str:
        return self._status

    @workflow.signal(name=REVOKE_SIGNAL)
    def revoke(self, revocation: ShareRevocation) -> None:
        if self._seen.first_time(revocation.event_id) and self._revocation is None:
            self._revocation = revocation

    def _enter(self, status: str) -> None:
        self._status = status
        workflow.set_current_details(status)

    @workflow.run
    async def run(self, share: ShareRequest) -> ShareOutcome:
        outcome = ShareOutcome("refused")
        try:
            file = await self._check(share)
        except Refused as refused:
            self._enter(f"refused: {refused}")
            outcome.detail = str(refused)
            return outcome
        expires_at = share.expires_at
        url = None
        if share.grantee_type == GranteeType.PUBLIC_LINK:
            longest = workflow.now() + LONGEST_LINK
            expires_at = longest if expires_at is None else min(expires_at, longest)
        self._enter("recording the grant")
        await call_db(
            DatabaseActivities.record_share,
            build(
                ShareInput,
                share,
                grantee_type=GranteeType(share.grantee_type),
                permission=SharePermission(share.permission),
                expires_at=expires_at,
            ),
        )
        if expires_at is not None and share.grantee_type == GranteeType.PUBLIC_LINK:
            url = await self._sign(file, expires_at)
        outcome.expires_at, outcome.has_link = expires_at, url is not None
        if share.notify and share.grantee:
            notice = await self._notify(share, share.grantee, file, url, expires_at)
            outcome.events.append(notice)
        outcome.events.append(await self._emit(share, FileShared, url, expires_at))
        outcome.status, outcome.detail = await self._until_it_ends(share, expires_at)
        ended = FileShareRevoked if outcome.status == "revoked" else FileShareExpired
        outcome.events.append(await self._emit(share, ended, None, expires_at))
        self._enter(outcome.status)
        return outcome

    async def _check(self, share: ShareRequest) -> FileRecord:
        if share.expires_at is not None and share.expires_at <= workflow.now():
            raise Refused("the share expires before it starts")
        if share.grantee_type != GranteeType.PUBLIC_LINK and not share.grantee:
            raise Refused(f"a {share.grantee_type} share names no grantee")
        permission = await call_db(
            DatabaseActivities.check_permission,
            PermissionQuery(share.tenant_id, share.shared_by, share.file_id, FileAction.SHARE),
        )
        if not permission.allowed:
            raise Refused(_REFUSALS.get(str(permission.reason), str(permission.reason)))
        lookup = await call_db(DatabaseActivities.get_file, FileRef(share.tenant_id, share.file_id))
        if not lookup.found or lookup.file is None:
            raise Refused(_REFUSALS["file_not_found"])
        file: FileRecord = lookup.file
        return file

    async def _sign(self, file: FileRecord, expires_at: datetime) -> str:
        self._enter("signing the link")
        seconds = max(1, int((expires_at - workflow.now()).total_seconds()))
        url: str = await workflow.execute_activity_method(
            StorageActivities.sign_url,
            SignRequest(file.storage, seconds),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=STORAGE_RETRY,
        )
        return url

    async def _until_it_ends(
        self, share: ShareRequest, expires_at: datetime | None
    ) -> tuple[str, str | None]:
        """Wait for the expiry or a revocation; then end the grant in the database."""
        self._enter("active" + (f" until {expires_at.isoformat()}" if expires_at else ""))
        timeout = None if expires_at is None else (expires_at - workflow.now()).total_seconds()
        # Checks retried past a short expiry leave no time to wait: expired at once.
        expired = timeout is not None and timeout <= 0
        if not expired:
            try:
                await workflow.wait_condition(lambda: self._revocation is not None, timeout=timeout)
            except TimeoutError:
                expired = True
        if expired:
            await call_db(
                DatabaseActivities.revoke_share,
                RevokeShareInput(share.tenant_id, share.share_id, expired=True),
            )
            return "expired", None
        assert self._revocation is not None
        revoked_by = self._revocation.revoked_by
        await call_db(
            DatabaseActivities.revoke_share,
            RevokeShareInput(share.tenant_id, share.share_id, revoked_by=revoked_by),
        )
        return "revoked", f"revoked by {revoked_by}"

    async def _notify(
        self,
        share: ShareRequest,
        recipient: str,
        file: FileRecord,
        url: str | None,
        expires_at: datetime | None,
    ) -> str:
        params = {
            "file_id": share.file_id,
            "filename": file.filename,
            "shared_by": share.shared_by,
            "permission": share.permission,
        }
        if url is not None:
            params["url"] = url
        if expires_at is not None:
            params["expires_at"] = expires_at.astimezone(UTC).isoformat()
        if share.message:
            params["message"] = share.message
        notification = NotificationRequested(
            channel="email", recipient=recipient, template=SHARED_TEMPLATE, params=params
        )
        return await answer(share, notification, source=SOURCE)

    async def _emit(
        self,
        share: ShareRequest,
        kind: type[ShareEvent],
        url: str | None,
        expires_at: datetime | None,
    ) -> str:
        millis = None if expires_at is None else int(expires_at.timestamp() * 1000)
        event = build(kind, share, url=url, expires_at=millis)
        return await answer(share, event, source=SOURCE)
