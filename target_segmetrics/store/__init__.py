"""The target's store: engine and schema versions, one module per table, behind :class:`Store`."""

from target_segmetrics.store.store import (
    SCHEMA_VERSION,
    Store,
    StoreUnavailableError,
    database_url,
    redacted,
)

__all__ = ["SCHEMA_VERSION", "Store", "StoreUnavailableError", "database_url", "redacted"]
