"""A tenant's running usage totals and how one event moves them (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ferry.contracts.ids import event_id_for
from ferry.contracts.workflows import USAGE_SIGNAL, UsageUpdate

# How many of a tenant's last event IDs the meter remembers to drop re-deliveries.
RECENT_EVENT_IDS = 200


@dataclass(frozen=True)
class TenantUsage:
    """Files and bytes processed for one tenant, and the IDs of its last counted events."""

    files: int = 0
    bytes: int = 0
    recent_event_ids: tuple[str, ...] = field(default=())

    def count(
        self, event_id: str, size_bytes: int, keep: int = RECENT_EVENT_IDS
    ) -> TenantUsage | None:
        """The totals with one more file, or None if `event_id` was already counted."""
        if event_id in self.recent_event_ids:
            return None
        return replace(
            self,
            files=self.files + 1,
            bytes=self.bytes + size_bytes,
            recent_event_ids=(*self.recent_event_ids, event_id)[-keep:],
        )

    def update(self, tenant_id: str, source_event_id: str) -> UsageUpdate:
        """The signal for the monitoring workflow after `source_event_id` moved the totals.

        Its `event_id` depends only on the tenant and the source event, so
        counting the same event again (after a restart) repeats the same ID.
        """
        return UsageUpdate(
            event_id=event_id_for(f"meter/{tenant_id}/{source_event_id}", USAGE_SIGNAL),
            files=self.files,
            bytes=self.bytes,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "recent_event_ids": list(self.recent_event_ids),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> TenantUsage:
        if not data:
            return cls()
        return cls(
            files=int(data["files"]),
            bytes=int(data["bytes"]),
            recent_event_ids=tuple(data.get("recent_event_ids", ())),
        )
