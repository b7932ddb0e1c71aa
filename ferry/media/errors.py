"""What the content itself says is wrong: the activities turn these into results or errors."""

from __future__ import annotations


class CorruptContent(Exception):
    """The bytes cannot be read as the type they claim."""


class TooLarge(Exception):
    """The object grew past the limit while it was read."""


class ModelMissing(Exception):
    """The moderation model is not installed (it is never downloaded)."""


class ModerationUnavailable(Exception):
    """The moderation service did not answer (down, or overloaded past its timeout)."""
