"""The store's tables and the schema version it records (for later migrations).

Every table is keyed by destination (``scope``: API URL, account, integration) first, so a store shared by
several destinations never mixes them. The tables are made on first use.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from target_segmetrics.errors import StoreUnavailableError

SCHEMA_VERSION = 2

metadata = sa.MetaData()
lookup_rows = sa.Table(
    "lookup_rows",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("row_id", sa.Text, primary_key=True),
    sa.Column("row", sa.Text, nullable=False),
    sa.Column("stored_at", sa.Float, nullable=False),
)
parked_table = sa.Table(
    "parked",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("object", sa.Text, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("waiting", sa.Text, nullable=False),
    sa.Column("parked_at", sa.Float, nullable=False),
    # Nanoseconds when (last) parked, unique in a run: the release order (ties between two runs are
    # broken by stream and object). Never max(seq) + 1, which two runs at once would both take.
    sa.Column("seq", sa.BigInteger, nullable=False),
    # What the record names in SegMetrics (JSON list of [family, field, value]): a newer record of the
    # same object from another stream is seen even when the record was parked by an earlier run.
    sa.Column("identities", sa.Text, nullable=True),
)
sent = sa.Table(
    "sent",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("email", sa.Text),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Index("sent_email", "scope", "kind", "email"),
)
record_digests = sa.Table(
    "record_digests",
    metadata,
    # With skip_unchanged, per record of a stream (by its key properties): the record as it came with its
    # mapping (``record``, a digest), what the mapping read besides it (``transcript``, JSON), and what it
    # made: the object (``kind``, ``object``), its identities (JSON) and the requests' digest (``made``).
    # Valid only while ``sent`` holds that digest for the object (read joined with it).
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("transcript", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("identities", sa.Text, nullable=False),
    sa.Column("made", sa.Text, nullable=False),
)
schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)


def create(conn: sa.Connection, where: str) -> None:
    """Make the tables if new and record the schema version; a store written by a newer version is not touched."""
    metadata.create_all(conn)
    if "identities" not in {column["name"] for column in sa.inspect(conn).get_columns("parked")}:
        # A store made before parked records kept their identities: the column is added (NULL for the
        # rows already parked; an older target-segmetrics sharing the store ignores it).
        conn.exec_driver_sql("ALTER TABLE parked ADD COLUMN identities TEXT")
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(schema_version)
    conn.execute(insert.values(id=1, version=SCHEMA_VERSION).on_conflict_do_nothing())
    version = conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1)).scalar_one()
    if version > SCHEMA_VERSION:
        raise StoreUnavailableError(
            f"The store {where} was written by a newer target-segmetrics (schema version {version}, "
            f"this one knows {SCHEMA_VERSION}): upgrade target-segmetrics"
        )
