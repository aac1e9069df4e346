"""What can go wrong: every error that stops a run (one base, :class:`FatalError`), a refused record, a
retryable failure.

Each error that stops a run says in its message what to fix (one line, never the API key or a database
password); the target prints it as one ERROR line and exits 1, before any request when it can.
"""

from __future__ import annotations

from singer_sdk.exceptions import InvalidJSONSchema, RecordsWithoutSchemaException


class FatalError(Exception):
    """The run cannot go on; the message says what to fix (and never holds the key)."""


# --- the input and the config ---------------------------------------------------------------------


class InputError(FatalError):
    """The Singer input is broken at a given line; the message says where and why."""


class RecordBeforeSchemaError(InputError, RecordsWithoutSchemaException):
    """A RECORD arrived for a stream whose SCHEMA has not been seen."""


class InvalidSchemaError(InputError, InvalidJSONSchema):
    """A SCHEMA message whose schema is not valid JSON Schema."""


class MappingError(FatalError):
    """The mapping does not fit the stream's schema (a path that names nothing)."""


# --- the run's own limits -------------------------------------------------------------------------


class RecordRejectedError(FatalError):
    """Raised with ``on_reject: fail``: a record was rejected, so the run stops."""


class DeleteLimitError(FatalError):
    """The run would delete more than ``max_deletes_per_run`` objects."""


class StreamRejectedError(FatalError):
    """Nearly every record of a stream was rejected: the mapping is wrong, not the data."""


class SetupRefusedError(FatalError):
    """SegMetrics refuses nearly everything: the setup is wrong, not the data."""


class StdoutClosedError(FatalError):
    """Whatever read the target's stdout has gone: no STATE can be passed on."""


class StoreUnavailableError(FatalError):
    """The store's database cannot be reached or used: the run stops (before any request when opening)."""

    reason: str | None = None
    """The database's own reason (one line, never the password), when it gave one."""


# --- SegMetrics -----------------------------------------------------------------------------------


class AuthenticationError(FatalError):
    """SegMetrics refused the API key (401/403)."""


class NotFoundError(FatalError):
    """The account or integration does not exist (404)."""


class ApiUnavailableError(FatalError):
    """SegMetrics kept failing past the retry budget."""


class TlsError(FatalError):
    """The TLS connection failed in a way another try cannot fix (an untrusted certificate, no TLS)."""


class LocalLimitError(FatalError):
    """This machine, not SegMetrics, ran out of something (open files)."""


class UnexpectedAnswerError(FatalError):
    """An answer that is neither success, a refusal of the record, nor a transient failure."""


TRANSIENT = frozenset({408, 500, 502, 503, 504})
"""Answers worth another try (with 429). Other 5xx (501, 505, 511 ...) say something retries cannot change."""

REFUSALS = frozenset({400, 409, 413, 422})
"""Answers that refuse the record itself: it is rejected, the run goes on."""


class RejectedError(Exception):
    """SegMetrics refused this payload (400 and the like); ``errors`` are its own words."""

    def __init__(self, status: int, errors: list[str]) -> None:
        super().__init__(f"HTTP {status}: {'; '.join(errors)}")
        self.status = status
        self.errors = errors


API_DOWN_HINT = "The API may be down; run again later"


THROTTLED = "answered 429"
"""The kind of a retry after SegMetrics answered 429 (too many requests)."""


class Retryable(Exception):
    """A transient failure worth another try; ``hint`` ends the message once the tries run out.

    ``kind`` names the trouble for counting ("answered 429", "dropped connection", "timed out"...)."""

    def __init__(
        self, reason: str, retry_after: float | None = None, hint: str = API_DOWN_HINT, *, kind: str = "failed request"
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.hint = hint
        self.kind = kind
