"""The closed sets of values the database stores, as `StrEnum`s.

The values are the contract's spellings (CONTRACT §3-§4) where the contract
names them; the database stores the values, not the member names.
"""

from __future__ import annotations

from enum import StrEnum


class TenantPlan(StrEnum):
    FREE = "free"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class TenantStatus(StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETING = "deleting"


class StorageProvider(StrEnum):
    LOCAL = "local"
    S3 = "s3"
    GCS = "gcs"
    AZURE = "azure"


class MemberRole(StrEnum):
    """A user's role in a tenant, from most to least powerful."""

    OWNER = "owner"
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


class FileState(StrEnum):
    PROCESSING = "processing"
    PROCESSED = "processed"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"


class RejectionReason(StrEnum):
    """Why a file was rejected (the `reason` of `file.rejected`)."""

    INFECTED = "infected"
    INVALID_TYPE = "invalid_type"
    TOO_LARGE = "too_large"
    CORRUPT = "corrupt"
    QUOTA_EXCEEDED = "quota_exceeded"
    SCAN_FAILED = "scan_failed"


class GranteeType(StrEnum):
    USER = "user"
    EMAIL = "email"
    TENANT = "tenant"
    PUBLIC_LINK = "public_link"


class SharePermission(StrEnum):
    VIEW = "view"
    DOWNLOAD = "download"
    EDIT = "edit"


class ShareStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class MigrationState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class MigrationItemState(StrEnum):
    """One object of a file migration; `verified` is final until a rollback."""

    PENDING = "pending"
    COPIED = "copied"
    VERIFIED = "verified"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class FileAction(StrEnum):
    """What a user may want to do with a file (permission checks)."""

    VIEW = "view"
    DOWNLOAD = "download"
    EDIT = "edit"
    SHARE = "share"
