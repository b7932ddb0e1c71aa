"""Database activities: the tenant-scoped repositories, as Temporal activities.

Each call is one transaction in one tenant's scope (row-level security applies),
and every write is idempotent: a retried activity leaves the rows as one run did.
Errors a retry cannot fix (unknown tenant or file, a forbidden state change, bad
input) are non-retryable `ApplicationError`s whose `type` names them.
"""

from ferry.activities.database.base import TenantScopedActivities
from ferry.activities.database.events import (
    EventMark,
    ProcessedEventActivities,
    ProcessedEventInput,
)
from ferry.activities.database.files import (
    BegunUpload,
    FileActivities,
    FileLocationInput,
    FileLookup,
    FileProcessedInput,
    FileProcessingInput,
    FileProcessingResult,
    FileRecord,
    FileRef,
    FileRejectedInput,
    UploadCheck,
    UploadCheckInput,
    UploadRefusal,
)
from ferry.activities.database.migrations import (
    FinishMigrationInput,
    MigrationDbActivities,
    MigrationItemsInput,
    MigrationItemsPage,
    MigrationItemsQuery,
    MigrationProgressRecord,
    MigrationRecord,
    MigrationRef,
    PendingKeys,
    PendingKeysInput,
    RollbackMigrationInput,
    StartMigrationInput,
    StartMigrationResult,
)
from ferry.activities.database.shares import (
    ActiveShares,
    ActiveSharesQuery,
    PermissionQuery,
    PermissionResult,
    RevokeShareInput,
    ShareActivities,
    ShareInput,
    ShareLookup,
    ShareRecord,
    ShareRef,
    ShareResult,
)
from ferry.activities.database.tenants import (
    ApplyPlanInput,
    CreateTenantInput,
    CreateTenantResult,
    DeletedTenantRows,
    MemberInput,
    MemberRecord,
    OverQuotaInput,
    TenantActivities,
    TenantLookup,
    TenantRecord,
    TenantRef,
    TenantStatusInput,
)
from ferry.activities.database.usage import (
    UsageActivities,
    UsageMeasurement,
    UsageReport,
)
from ferry.contracts.migrations import MigrationItem
from ferry.contracts.storage import Thumbnail


class DatabaseActivities(
    TenantActivities,
    UsageActivities,
    FileActivities,
    ShareActivities,
    MigrationDbActivities,
    ProcessedEventActivities,
):
    """Every database activity in one class, as the worker registers them.

    Workflows reference the activities as `DatabaseActivities.<method>`; the
    per-aggregate classes share `TenantScopedActivities.__init__(sessionmaker)`.
    """


__all__ = [
    "ActiveShares",
    "ActiveSharesQuery",
    "ApplyPlanInput",
    "BegunUpload",
    "CreateTenantInput",
    "CreateTenantResult",
    "DatabaseActivities",
    "DeletedTenantRows",
    "EventMark",
    "FileActivities",
    "FileLocationInput",
    "FileLookup",
    "FileProcessedInput",
    "FileProcessingInput",
    "FileProcessingResult",
    "FileRecord",
    "FileRef",
    "FileRejectedInput",
    "FinishMigrationInput",
    "MemberInput",
    "MemberRecord",
    "MigrationDbActivities",
    "MigrationItem",
    "MigrationItemsInput",
    "MigrationItemsPage",
    "MigrationItemsQuery",
    "MigrationProgressRecord",
    "MigrationRecord",
    "MigrationRef",
    "OverQuotaInput",
    "PendingKeys",
    "PendingKeysInput",
    "PermissionQuery",
    "PermissionResult",
    "ProcessedEventActivities",
    "ProcessedEventInput",
    "RevokeShareInput",
    "RollbackMigrationInput",
    "ShareActivities",
    "ShareInput",
    "ShareLookup",
    "ShareRecord",
    "ShareRef",
    "ShareResult",
    "StartMigrationInput",
    "StartMigrationResult",
    "TenantActivities",
    "TenantLookup",
    "TenantRecord",
    "TenantRef",
    "TenantScopedActivities",
    "TenantStatusInput",
    "Thumbnail",
    "UploadCheck",
    "UploadCheckInput",
    "UploadRefusal",
    "UsageActivities",
    "UsageMeasurement",
    "UsageReport",
]
