"""The payload key the recorded histories are encrypted with.

Public on purpose: these histories hold test data only, and every machine must
be able to replay them. Never a key of a real deployment.
"""

REPLAY_KEYS = "replay:cmVwbGF5LWtleS1mb3ItcmVjb3JkZWQtaGlzdG9yaWU="
