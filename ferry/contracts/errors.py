"""The error types activities raise and workflows decide on, by name.

Temporal carries an application error's type as a string; these constants are
those strings, each said once. `ErrorKind` builds the error (non-retryable when
the kind is permanent) and recognises it again at the bottom of an activity's
or child workflow's failure. `PERMANENT` is derived from the kinds: the types
that retry policies never retry.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError


@dataclass(frozen=True)
class ErrorKind:
    """One error type: its name and whether a retry could ever fix it."""

    name: str
    permanent: bool

    def __call__(self, message: str) -> ApplicationError:
        return ApplicationError(message, type=self.name, non_retryable=self.permanent)

    def caused(self, err: BaseException) -> bool:
        """Whether `err` is, or fails because of, an error of this kind."""
        cause = root_cause(err)
        return isinstance(cause, ApplicationError) and cause.type == self.name


def root_cause(err: BaseException) -> BaseException:
    """The failure at the bottom of an activity or child workflow failure."""
    while isinstance(err, ActivityError | ChildWorkflowError) and err.cause is not None:
        err = err.cause
    return err


# No retry fixes these: the activity fails at once and the workflow decides.
OBJECT_NOT_FOUND = ErrorKind("ObjectNotFound", permanent=True)
UNKNOWN_PROVIDER = ErrorKind("UnknownProvider", permanent=True)
INVALID_KEY = ErrorKind("InvalidKey", permanent=True)
OUTSIDE_TENANT = ErrorKind("OutsideTenant", permanent=True)
TENANT_NOT_FOUND = ErrorKind("TenantNotFound", permanent=True)
FILE_NOT_FOUND = ErrorKind("FileNotFound", permanent=True)
INVALID_TRANSITION = ErrorKind("InvalidTransition", permanent=True)
CORRUPT_FILE = ErrorKind("CorruptFile", permanent=True)
MODEL_MISSING = ErrorKind("ModelMissing", permanent=True)

# Errors a step raises and its workflow turns into an outcome; their retry
# policies list them where it matters.
SCAN_LIMIT_EXCEEDED = ErrorKind("ScanLimitExceeded", permanent=True)
CHECKSUM_MISMATCH = ErrorKind("ChecksumMismatch", permanent=True)
INVALID_REQUEST = ErrorKind("InvalidRequest", permanent=True)
INVALID_INPUT = ErrorKind("InvalidInput", permanent=True)
INTEGRITY_ERROR = ErrorKind("IntegrityError", permanent=True)
# An event that its schema refuses (a misspelt or missing field): no retry fixes it.
INVALID_EVENT = ErrorKind("InvalidEvent", permanent=True)
# A deletion that left something behind: the run fails, so an operator looks.
DELETION_INCOMPLETE = ErrorKind("DeletionIncomplete", permanent=True)

# Retried by Temporal until they pass: the service comes back.
SCANNER_UNAVAILABLE = ErrorKind("ScannerUnavailable", permanent=False)
SCAN_ERROR = ErrorKind("ScanError", permanent=False)

KINDS = (
    OBJECT_NOT_FOUND, UNKNOWN_PROVIDER, INVALID_KEY, OUTSIDE_TENANT, TENANT_NOT_FOUND,
    FILE_NOT_FOUND, INVALID_TRANSITION, CORRUPT_FILE, MODEL_MISSING, SCAN_LIMIT_EXCEEDED,
    CHECKSUM_MISMATCH, INVALID_REQUEST, INVALID_INPUT, INTEGRITY_ERROR, INVALID_EVENT,
    DELETION_INCOMPLETE, SCANNER_UNAVAILABLE, SCAN_ERROR,
)  # fmt: skip
# The types every retry policy of Ferry's workflows leaves unretried.
PERMANENT = [kind.name for kind in KINDS if kind.permanent]
# A location that is not the upload's (`layout.Places`): the workflow rejects the upload.
LOCATION_REFUSED = (OUTSIDE_TENANT, INVALID_KEY)
