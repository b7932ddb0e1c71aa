"""Kafka consumers: the Kafka → Temporal bridge and its dead-letter queue."""
