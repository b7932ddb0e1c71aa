"""Publishing Ferry's events to Kafka."""

from ferry.producers.publisher import EventPublisher, Published, event_headers

__all__ = ["EventPublisher", "Published", "event_headers"]
