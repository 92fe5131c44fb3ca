"""Domain errors of ``fairness``.

Every exception subclasses a built-in (via :class:`recsys.errors.ClearshelfError`
where it fits) and says what is wrong and what to do. Only ``api`` maps them to
HTTP status codes or exit codes. Messages that tests match are constants.
"""

from __future__ import annotations

from recsys.errors import ClearshelfError

UNKNOWN_THRESHOLD_VERSION = "threshold version {version} does not exist; versions stored: {known}"
NO_EVENTS = "there are no events to audit: import data (clearshelf import) or run `clearshelf demo` first"
NO_OUTCOMES = (
    "no customer in the audit cohort has a held-out purchase to judge: give the audit "
    "more history (a later --cutoff-days, more events) or check the data was imported"
)
UNKNOWN_ATTRIBUTE = (
    "customer attribute '{name}' is not in the data; attributes available: {known}. "
    "Declare sensitive attributes at import with --sensitive"
)
UNKNOWN_REPORT = "no fairness report with id '{report_id}'; run `clearshelf audit` or list reports"


class FairnessError(ClearshelfError):
    """Base class of the audit's own errors."""


class ThresholdError(FairnessError, ValueError):
    """Threshold settings are invalid or refer to a version that does not exist."""


class AuditInputError(FairnessError, ValueError):
    """The audit cannot be run on this input (no cohort, unknown attribute, ...)."""


class ReportNotFoundError(FairnessError, LookupError):
    """A report id that is not stored."""


class AuditLockedError(FairnessError, RuntimeError):
    """Another process holds the audit lock."""
