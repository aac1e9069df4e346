"""What can go wrong talking to SegMetrics: the errors that stop a run, a refused record, a retryable failure."""

from __future__ import annotations


class FatalError(Exception):
    """The run cannot go on; the message says what to fix (and never holds the key)."""


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
