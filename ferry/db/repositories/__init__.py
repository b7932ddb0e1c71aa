"""Tenant-scoped repositories: every read and write of one tenant's rows.

A repository is bound to one session and one tenant. It writes that tenant's ID
into every row itself and filters every read by it, so callers cannot name a
foreign tenant; row-level security enforces the same in the database.

Writes are idempotent: inserts are upserts keyed by business IDs, and updates
touch a row only when a value actually changes, so repeating a call leaves the
rows exactly as one call did (`updated_at` included).
"""

from ferry.db.repositories.events import ProcessedEventRepository
from ferry.db.repositories.files import FileRepository, Usage
from ferry.db.repositories.migrations import (
    FileMigrationRepository,
    MigrationProgress,
)
from ferry.db.repositories.shares import ShareRepository
from ferry.db.repositories.tenants import TenantRepository
from ferry.db.repositories.usage import UsageRepository
from ferry.db.repositories.users import UserRepository

__all__ = [
    "FileMigrationRepository",
    "FileRepository",
    "MigrationProgress",
    "ProcessedEventRepository",
    "ShareRepository",
    "TenantRepository",
    "Usage",
    "UsageRepository",
    "UserRepository",
]
