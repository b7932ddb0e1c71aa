"""Ferry: the file and tenant platform, Temporal-first and fed by Kafka."""

__version__ = "0.1.0"
