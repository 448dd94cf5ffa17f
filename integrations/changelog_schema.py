"""The change log's tables, database guards and canonical event encoding.

Kept apart from `changelog_sql.SqlChangeLog` so that the encoding (what a hash covers)
can be read, and reused by tools, on its own.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

GENESIS = "0" * 64
"""The previous hash of the first event ever appended."""

SEP = "\x1f"
"""Field separator of the canonical encoding; JSON escapes it inside payloads."""

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""Event times are stored as fixed-width UTC text: they sort, compare and hash as text."""

metadata = sa.MetaData()

events_table = sa.Table(
    "change_events", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("change_id", sa.String(128), nullable=False, index=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("at", sa.String(32), nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
)

head_table = sa.Table(
    "chain_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("at", sa.String(32), nullable=False, server_default=""),
)
"""The chain's last event: its number, hash and time (appenders lock this row)."""

changes_table = sa.Table(
    "changes", metadata,
    sa.Column("change_id", sa.String(128), primary_key=True),
    sa.Column("category", sa.String(32), index=True),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("outcome", sa.String(32)),
    sa.Column("opened_at", sa.String(32), nullable=False, index=True),
    sa.Column("updated_at", sa.String(32), nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
)
"""A cache of each change's record, folded from its events. Each row carries a MAC over
its record under the chain key, so an edit is refused on reading; the decisions before a
production side effect fold the change's verified events again and never read this."""

checkpoints_table = sa.Table(
    "chain_checkpoints", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("cutoff", sa.String(32), nullable=False),
    sa.Column("purged_events", sa.BigInteger, nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
)


sync_state_table = sa.Table(
    "sync_state", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.String(32), nullable=False),
)
"""Operational state of the syncs (watermarks, what was seen of each ticket). Not
evidence: what the syncs decide is in the change log; this only saves work."""


def format_time(at: datetime) -> str:
    """Canonical text of an aware datetime, in UTC."""
    if at.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Inverse of `format_time`."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def canonical_payload(payload: dict[str, Any]) -> str:
    """The payload as canonical JSON (sorted keys, no spaces); raises on non-JSON values."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def event_hash(seq: int, change_id: str, type_: str, at: str, actor: str, payload: str,
               prev_hash: str) -> str:
    """sha256 over the canonical encoding of one event and the hash before it."""
    body = SEP.join((str(seq), change_id, type_, at, actor, payload, prev_hash))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def record_digest(record_json: str) -> str:
    """What a cached record's MAC covers: sha256 of its JSON text."""
    return hashlib.sha256(record_json.encode("utf-8")).hexdigest()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_engine(url: str) -> Engine:
    """A SQLite engine for the change log: WAL, full sync, writers lock at BEGIN."""
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the lock at the start, so two appenders serialise on the head;
        # readers take a snapshot without blocking anyone.
        write = conn.get_execution_options().get("changeflow_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def guards(dialect: str, retention_years: int) -> list[str]:
    """DDL for the append-only and retention triggers."""
    if dialect == "sqlite":
        return [
            "CREATE TRIGGER IF NOT EXISTS change_events_no_update BEFORE UPDATE ON "
            "change_events BEGIN SELECT RAISE(ABORT, 'change_events is append-only'); END",
            "CREATE TRIGGER IF NOT EXISTS change_events_retention BEFORE DELETE ON "
            "change_events WHEN OLD.at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', "
            f"'-{retention_years} years') BEGIN SELECT RAISE(ABORT, "
            f"'change_events younger than {retention_years} years cannot be deleted'); END",
        ]
    return [
        f"""CREATE OR REPLACE FUNCTION change_events_guard() RETURNS trigger AS $$
        BEGIN
          IF TG_OP = 'UPDATE' THEN
            RAISE EXCEPTION 'change_events is append-only';
          END IF;
          IF OLD.at > to_char((now() AT TIME ZONE 'UTC') - interval '{retention_years} years',
                              'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') THEN
            RAISE EXCEPTION 'change_events younger than {retention_years} years cannot be deleted';
          END IF;
          RETURN OLD;
        END $$ LANGUAGE plpgsql""",
        "DROP TRIGGER IF EXISTS change_events_guard ON change_events",
        "CREATE TRIGGER change_events_guard BEFORE UPDATE OR DELETE ON change_events "
        "FOR EACH ROW EXECUTE FUNCTION change_events_guard()",
    ]


class SchemaOutdated(Exception):
    """The database holds a change log of an older, incompatible schema."""


APP_GRANTS = {
    "change_events": "SELECT, INSERT",
    "chain_head": "SELECT, UPDATE",
    "changes": "SELECT, INSERT, UPDATE",
    "chain_checkpoints": "SELECT",
    "sync_state": "SELECT, INSERT, UPDATE, DELETE",
}
"""What the flows' role may do on PostgreSQL, and nothing else: it appends events and
moves the head; it can neither rewrite, delete nor truncate events, nor touch a trigger
(only the owner of a table may alter, disable or drop its triggers)."""


def migrate(conn: Connection, dialect: str, retention_years: int,
            app_role: str | None = None) -> None:
    """Create the schema and its guards (idempotent); on PostgreSQL grant `app_role` its rights.

    Run as the schema's owner (`changeflow migrate`): the flows' role must not own the
    tables, or it could disable their triggers.
    """
    if dialect == "postgresql":
        # Serialise schema set-up between processes starting together.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242)")
    metadata.create_all(conn)
    columns = {c["name"] for c in sa.inspect(conn).get_columns("change_events")}
    if "mac" not in columns:
        raise SchemaOutdated("the change log was written by a changeflow without chain keys "
                             "(its events have no MAC column): keep it as read-only evidence "
                             "and start a new change log")
    if conn.execute(sa.select(head_table.c.id)).first() is None:
        conn.execute(head_table.insert().values(id=1, seq=0, hash=GENESIS))
    for ddl in guards(dialect, retention_years):
        conn.exec_driver_sql(ddl)
    if dialect == "postgresql" and app_role:
        role = conn.dialect.identifier_preparer.quote(app_role)
        for table in metadata.tables:
            conn.exec_driver_sql(f"REVOKE ALL ON {table} FROM {role}")
        for table, rights in APP_GRANTS.items():
            conn.exec_driver_sql(f"GRANT {rights} ON {table} TO {role}")


def schema_ready(conn: Connection, dialect: str) -> bool:
    """Whether the schema and its guards exist (PostgreSQL), so nothing needs creating."""
    if dialect != "postgresql":
        return False
    found = conn.exec_driver_sql(
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'change_events_guard' "
        "AND NOT tgisinternal").scalar()
    return bool(found)
