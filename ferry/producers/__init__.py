"""Publishing Ferry's events to Kafka."""

from ferry.contracts.topics import inbound_topic_for, topic_for
from ferry.producers.ids import event_id_for
from ferry.producers.publisher import EventPublisher, Published, event_headers

__all__ = [
    "EventPublisher",
    "Published",
    "event_headers",
    "event_id_for",
    "inbound_topic_for",
    "topic_for",
]
