"""Ignoring repeated signals: the event IDs a workflow has already acted on.

Kafka delivers at least once and the bridge may signal twice after a crash;
every signal carries its event's `event_id`, and a workflow keeps the last IDs
it has seen (bounded, so its history and continue-as-new state stay small).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_LIMIT = 500


@dataclass
class SeenEvents:
    """A bounded, ordered memory of event IDs; part of a workflow's carried state."""

    ids: list[str] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT

    def first_time(self, event_id: str) -> bool:
        """Record `event_id`; False if it was already seen (the signal is a repeat)."""
        if event_id in self.ids:
            return False
        self.ids.append(event_id)
        if len(self.ids) > self.limit:
            del self.ids[: len(self.ids) - self.limit]
        return True
