"""What starts or signals each workflow (CONTRACT §3): its name, its ID, its signals, its input.

The bridge, the meter and the CLI start and signal workflows through these
alone, so they never import a workflow's implementation (nor, through it, the
activities, Pillow or SQLAlchemy). The workflow modules take their names and
inputs from here; the dataclasses' fields are the wire shape of recorded
histories, so they change only by adding a field with a default.
"""

# No `from __future__ import annotations`: Temporal's data converter reads these
# dataclasses' field types at run time, in the workflow sandbox too.

from dataclasses import dataclass, field
from datetime import datetime

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from ferry.contracts.policy import TenantPolicy
from ferry.contracts.storage import BucketRef, StorageRef

FILE_UPLOAD = "file_upload_workflow"
FILE_SHARING = "file_sharing_workflow"
FILE_MIGRATION = "file_migration_workflow"
TENANT_PROVISIONING = "tenant_provisioning_workflow"
TENANT_MONITORING = "tenant_monitoring_workflow"
TENANT_UPGRADE = "tenant_upgrade_workflow"
TENANT_PLAN_CHANGE = "tenant_plan_change_workflow"
RECONCILIATION = "reconciliation_workflow"
RESCAN = "rescan_workflow"
FILE_QUARANTINE = "file_quarantine_workflow"

# The reconciliation runs on this schedule; each run's ID is the schedule's
# workflow ID with the time it was due appended (Temporal's own naming).
RECONCILIATION_SCHEDULE = "ferry-reconciliation"
RECONCILIATION_ID = "reconciliation"
# The rescan runs on this schedule too (`RESCAN_ID` and the time it was due), and once
# for each signature version a worker's clamd first reports (`rescan_id`).
RESCAN_SCHEDULE = "ferry-rescan"
RESCAN_ID = "rescan"
# Work that belongs to no tenant (the reconciliation, alerts) names this one.
OPERATIONS_TENANT = "ferry-ops"

SHARE_REVOKE_SIGNAL = "share_revocation_requested"
LIFECYCLE_SIGNAL = "lifecycle_requested"
USAGE_SIGNAL = "usage_updated"
PLAN_SIGNAL = "plan_changed"
PAYMENT_SIGNAL = "payment_result"

# The search attributes every run carries (CONTRACT §5).
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
FILE_ID = SearchAttributeKey.for_keyword("FileId")

# A migration continues as new before its history passes this many events.
MIGRATION_HISTORY_LIMIT = 2_000


def search_attributes(tenant_id: str, file_id: str | None = None) -> TypedSearchAttributes:
    """`TenantId` and, where there is one, `FileId` (CONTRACT §5)."""
    pairs = [SearchAttributePair(TENANT_ID, tenant_id)]
    if file_id:
        pairs.append(SearchAttributePair(FILE_ID, file_id))
    return TypedSearchAttributes(pairs)


def file_upload_id(tenant_id: str, file_id: str) -> str:
    return f"file-upload/{tenant_id}/{file_id}"


def file_share_id(tenant_id: str, share_id: str) -> str:
    return f"file-share/{tenant_id}/{share_id}"


def rescan_id(signature_version: int) -> str:
    """The rescan started when clamd first reports `signature_version` (one per version)."""
    return f"rescan/signatures-{signature_version}"


def file_quarantine_id(tenant_id: str, file_id: str) -> str:
    return f"file-quarantine/{tenant_id}/{file_id}"


def file_migration_id(tenant_id: str, migration_id: str) -> str:
    return f"file-migration/{tenant_id}/{migration_id}"


def tenant_provisioning_id(tenant_id: str) -> str:
    return f"tenant-provisioning/{tenant_id}"


def tenant_monitoring_id(tenant_id: str) -> str:
    return f"tenant-monitoring/{tenant_id}"


def tenant_upgrade_id(tenant_id: str, upgrade_id: str) -> str:
    return f"tenant-upgrade/{tenant_id}/{upgrade_id}"


@dataclass
class FileUploadInput:
    """A `file.uploaded` event, as the workflow needs it."""

    event_id: str
    tenant_id: str
    file_id: str
    filename: str
    declared_content_type: str
    size_bytes: int
    storage: StorageRef
    uploaded_by: str
    sha256: str | None = None
    correlation_id: str | None = None
    # How long AI analysis may take before the upload goes on without it.
    analysis_deadline_seconds: float = 60.0
    # How long the media steps wait for the worker that holds the upload's copy before
    # they run on any worker from the stored original.
    copy_worker_wait_seconds: float = 60.0


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


@dataclass
class MigrationProgress:
    """Where the migration is; carried across continue-as-new and shown by the `progress` query."""

    phase: str = "starting"  # starting | listing | copying | cleaning up | completed | rolled back
    page_token: str | None = None  # listing: the next page of the source
    after_key: str | None = None  # copying: the last source key handed out
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    files_failed: int = 0
    # Objects written to the target, and objects found there already verified.
    written: int = 0
    skipped: int = 0
    runs: int = 1


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
    # Set by the workflow itself when it continues as new.
    progress: MigrationProgress | None = None
    history_limit: int = MIGRATION_HISTORY_LIMIT


@dataclass
class TenantCreation:
    """A `tenant.creation_requested` event."""

    event_id: str
    tenant_id: str
    name: str
    plan: str  # free | pro | enterprise
    region: str
    admin_email: str
    storage_provider: str  # local | s3 | gcs | azure
    correlation_id: str | None = None
    # The tenant service's settings; read from the worker's when not given.
    policy: TenantPolicy | None = None


@dataclass
class LifecycleRequest:
    """A `tenant.suspension_requested`, `.reactivation_requested` or `.deletion_requested` event."""

    event_id: str
    action: str  # suspend | reactivate | delete
    requested_by: str
    reason: str | None = None


@dataclass
class UsageUpdate:
    """The tenant's running totals, from the usage meter (`ferry meter`).

    `event_id` is deterministic in the event that moved the totals, so a
    meter that re-reads its topic after a crash sends repeats the workflow
    ignores.
    """

    event_id: str
    files: int
    bytes: int


@dataclass
class UpgradeRequest:
    """A `tenant.upgrade_requested` event."""

    event_id: str
    tenant_id: str
    upgrade_id: str
    from_plan: str
    to_plan: str
    requested_by: str
    correlation_id: str | None = None
    # The tenant service's settings; read from the worker's when not given.
    policy: TenantPolicy | None = None


@dataclass
class PaymentResult:
    """A `billing.payment_succeeded` or `billing.payment_failed` event, as a signal."""

    event_id: str
    payment_id: str
    succeeded: bool
    upgrade_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    reason: str | None = None


@dataclass
class ReconciliationRequest:
    """What a reconciliation run looks for, and whether it repairs what is safe to."""

    upload_deadline_seconds: int = 900
    share_grace_seconds: int = 300
    migration_idle_seconds: int = 1800
    # At most this many of each kind are named in the result (all are counted).
    sample_limit: int = 20
    # Start the monitoring workflow of a tenant that has none (at most this many per run).
    repair: bool = True
    repair_limit: int = 50
    # Only these tenants (an operator's look at a few); all of them when None.
    tenant_ids: list[str] | None = None


@dataclass
class RescanCursor:
    """Where a rescan is in its newest-first walk: the last file it looked at."""

    processed_at: datetime
    tenant_id: str
    file_id: str


@dataclass
class OutdatedFile:
    """A processed file whose bytes have no verdict under the current signatures: what the
    rescan's listing answers, and (its last) where the next page starts."""

    tenant_id: str
    file_id: str
    processed_at: datetime
    sha256: str | None = None
    verdict_at: datetime | None = None  # when its bytes were last judged; None: not recorded

    @property
    def cursor(self) -> RescanCursor:
        return RescanCursor(self.processed_at, self.tenant_id, self.file_id)


@dataclass
class RescanProgress:
    """How far a rescan has come, carried across its continue-as-new runs."""

    signature_version: int | None = None
    engine: str | None = None
    listed: int = 0
    rescanned: int = 0
    current: int = 0  # judged under the current signatures meanwhile: not read again
    quarantined: int = 0
    gone: int = 0  # deleted, moved or no longer processed since it was listed
    unscannable: int = 0  # over clamd's limits now: left as it is, and counted
    quarantined_files: list[str] = field(default_factory=list)  # tenant/file, the last 20
    # Found infected, but their quarantine failed (a permanent error: its run says why).
    quarantine_failed: list[str] = field(default_factory=list)
    cursor: RescanCursor | None = None
    started_at: datetime | None = None
    superseded_by: int | None = None  # clamd moved on to this version: its own rescan runs


@dataclass
class RescanRequest:
    """A rescan of the processed files whose verdict came from older signatures.

    At most `rate_per_second` files a second, `page_size` listed at a time; only
    `tenant_ids` when given. `progress` is set by the run itself as it continues
    as new.
    """

    rate_per_second: float = 2.0
    page_size: int = 50
    tenant_ids: list[str] | None = None
    progress: RescanProgress | None = None
