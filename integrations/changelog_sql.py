"""The change log on SQL (SQLite by default, PostgreSQL by URL), through SQLAlchemy.

One hash chain runs through every event of every change: event `n` stores the hash of
event `n-1`, and its own hash is sha256 over a canonical encoding of its fields and that
previous hash. Editing, deleting, inserting or reordering an event breaks the chain at
that event, and `verify` names it. A one-row `chain_head` table holds the last sequence
number and hash: appenders lock it, so two processes appending at once queue up instead
of forking the chain, and truncating the tail is caught against it.

An append writes the event, the change's projected record and the new head in one
transaction: all or nothing. The database refuses UPDATE on events outright, and DELETE
of events younger than the retention period (triggers), so even a hand-written SQL
statement cannot quietly rewrite recent evidence; `purge` removes only events older than
the retention period and records a checkpoint from which the rest still verifies.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.lifecycle import ChangeRecord, project
from domain.models import IDENTIFIER, ChangeEvent
from integrations.changelog_schema import (
    GENESIS,
    SEP,
    canonical_payload,
    changes_table,
    checkpoints_table,
    event_hash,
    events_table,
    format_time,
    guards,
    head_table,
    metadata,
    normalize_url,
    parse_time,
    sqlite_engine,
)


class RetentionError(Exception):
    """A deletion the retention policy forbids."""


@dataclass(frozen=True)
class NewEvent:
    """An event to append."""

    change_id: str
    type: str
    actor: str
    payload: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class Verification:
    """The outcome of checking the hash chain.

    Attributes:
        ok: the chain holds from its start (or last checkpoint) to the head.
        checked: how many events were checked.
        head_seq: the last sequence number checked.
        head_hash: the hash of the last event checked; print it to detect a later rewrite.
        bad_seq: the first event that breaks the chain, when it does not hold.
        problem: what is wrong with that event.
    """

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: str | None = None


class SqlChangeLog:
    """The change log on a SQL database. Safe to share between processes."""

    def __init__(self, url: str, retention_years: int = 3) -> None:
        """Connect and create the schema if needed.

        Args:
            url: a SQLAlchemy URL (`sqlite:///var/changeflow.db`, `postgresql://...`).
            retention_years: how long events are kept (policy section 7: at least 3).
        """
        url = normalize_url(url)
        self.retention_years = retention_years
        self.engine = (sqlite_engine(url) if url.startswith("sqlite")
                       else sa.create_engine(url, pool_pre_ping=True))
        self.dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            if conn.execute(sa.select(head_table.c.id)).first() is None:
                conn.execute(head_table.insert().values(id=1, seq=0, hash=GENESIS))
            if self.dialect == "postgresql":
                # Serialise schema set-up between processes starting together.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242)")
            for ddl in guards(self.dialect, retention_years):
                conn.exec_driver_sql(ddl)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction holding the append lock (SQLite: BEGIN IMMEDIATE)."""
        with self.engine.connect().execution_options(changeflow_write=True) as conn, \
                conn.begin():
            yield conn

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- writing ---------------------------------------------------------------------

    def append(self, change_id: str, type: str, actor: str, payload: dict[str, Any],
               at: datetime) -> ChangeEvent:
        """Append one event; see `append_many`."""
        return self.append_many([NewEvent(change_id, type, actor, payload, at)])[0]

    def append_many(self, new: Sequence[NewEvent]) -> list[ChangeEvent]:
        """Append events in one transaction, in order: all are written or none.

        Raises:
            domain.lifecycle.IllegalTransition: an event may not follow its change's state.
            ValueError: an id or actor is malformed, a time is naive, or a payload is not
                JSON.
        """
        prepared = [self._prepare(e) for e in new]
        with self._write() as conn:
            seq, prev = self._lock_head(conn)
            records = self._load_records(conn, {e.change_id for e, _, _ in prepared})
            existing = set(records)
            rows, written = [], []
            for e, at_text, payload_text in prepared:
                seq += 1
                records[e.change_id] = project(records.get(e.change_id), e.change_id, e.type,
                                               e.payload, e.at, seq)
                digest = event_hash(seq, e.change_id, e.type, at_text, e.actor,
                                    payload_text, prev)
                rows.append({"seq": seq, "change_id": e.change_id, "type": e.type,
                             "at": at_text, "actor": e.actor, "payload": payload_text,
                             "prev_hash": prev, "hash": digest})
                written.append(ChangeEvent(seq=seq, change_id=e.change_id, type=e.type,
                                           at=parse_time(at_text), actor=e.actor,
                                           payload=e.payload, prev_hash=prev, hash=digest))
                prev = digest
            if rows:
                conn.execute(events_table.insert(), rows)
                self._save_records(conn, records, existing)
                conn.execute(head_table.update().where(head_table.c.id == 1)
                             .values(seq=seq, hash=prev))
        return written

    @staticmethod
    def _prepare(e: NewEvent) -> tuple[NewEvent, str, str]:
        for name, value in (("change id", e.change_id), ("actor", e.actor)):
            if not IDENTIFIER.match(value):
                raise ValueError(f"{name} {value!r} is malformed: use letters, digits and "
                                 "._:@+- (no spaces), at most 128 characters")
        try:
            payload_text = canonical_payload(e.payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload of {e.type!r} for {e.change_id} is not JSON: {exc}") \
                from None
        return e, format_time(e.at), payload_text

    def _lock_head(self, conn: Connection) -> tuple[int, str]:
        query = sa.select(head_table.c.seq, head_table.c.hash).where(head_table.c.id == 1)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one()
        return int(row.seq), str(row.hash)

    @staticmethod
    def _load_records(conn: Connection, change_ids: set[str]) -> dict[str, ChangeRecord]:
        found: dict[str, ChangeRecord] = {}
        ids = sorted(change_ids)
        for i in range(0, len(ids), 500):
            query = sa.select(changes_table.c.record).where(
                changes_table.c.change_id.in_(ids[i:i + 500]))
            for text in conn.execute(query).scalars():
                record = ChangeRecord.model_validate_json(text)
                found[record.change_id] = record
        return found

    @staticmethod
    def _save_records(conn: Connection, records: dict[str, ChangeRecord],
                      existing: set[str]) -> None:
        rows = [{"id": r.change_id, "change_id": r.change_id,
                 "category": r.category.value if r.category else None,
                 "state": r.state, "outcome": r.outcome,
                 "opened_at": format_time(r.opened_at), "updated_at": format_time(r.updated_at),
                 "record": r.model_dump_json()} for r in records.values()]
        updates = [r for r in rows if r["id"] in existing]
        inserts = [{k: v for k, v in r.items() if k != "id"} for r in rows
                   if r["id"] not in existing]
        if updates:
            conn.execute(changes_table.update()
                         .where(changes_table.c.change_id == sa.bindparam("id"))
                         .values({k: sa.bindparam(k) for k in
                                  ("category", "state", "outcome", "opened_at", "updated_at",
                                   "record")}),
                         [{k: v for k, v in r.items() if k != "change_id"} for r in updates])
        if inserts:
            conn.execute(changes_table.insert(), inserts)

    # -- side effects ----------------------------------------------------------------

    def record_intent(self, change_id: str, action: str, actor: str, details: dict[str, Any],
                      at: datetime) -> str:
        """Record that a side effect is about to happen; returns its effect id.

        Write the intent before acting and `record_outcome` after: a crash in between
        leaves an intent without an outcome, which `unfinished_effects` shows next time.
        """
        effect_id = uuid.uuid4().hex
        self.append(change_id, "effect_started", actor,
                    {"effect_id": effect_id, "action": action, "details": details}, at)
        return effect_id

    def record_outcome(self, change_id: str, effect_id: str, actor: str, ok: bool,
                       result: dict[str, Any], at: datetime) -> None:
        """Record how a side effect ended."""
        self.append(change_id, "effect_finished", actor,
                    {"effect_id": effect_id, "ok": ok, "result": result}, at)

    def unfinished_effects(self, change_id: str | None = None) -> list[ChangeEvent]:
        """Intents with no recorded outcome: side effects that may or may not have happened."""
        query = sa.select(events_table).where(
            events_table.c.type.in_(("effect_started", "effect_finished")))
        if change_id is not None:
            query = query.where(events_table.c.change_id == change_id)
        started: dict[str, ChangeEvent] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(events_table.c.seq)):
                event = _to_event(row)
                if event.type == "effect_started":
                    started[event.payload["effect_id"]] = event
                else:
                    started.pop(event.payload.get("effect_id", ""), None)
        return list(started.values())

    # -- reading ---------------------------------------------------------------------

    def events(self, change_id: str) -> list[ChangeEvent]:
        """A change's events in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(events_table)
                                .where(events_table.c.change_id == change_id)
                                .order_by(events_table.c.seq))
            return [_to_event(r) for r in rows]

    def events_between(self, start: datetime, end: datetime) -> Iterator[ChangeEvent]:
        """Events with start <= at < end, in chain order, streamed."""
        query = (sa.select(events_table)
                 .where(events_table.c.at >= format_time(start),
                        events_table.c.at < format_time(end))
                 .order_by(events_table.c.seq))
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=5000).execute(query)
            for row in result:
                yield _to_event(row)

    def record(self, change_id: str) -> ChangeRecord | None:
        """A change's current record, or None."""
        with self.engine.connect() as conn:
            return self._load_records(conn, {change_id}).get(change_id)

    def changes(self, category: str | None = None,
                emergency: bool | None = None) -> list[ChangeRecord]:
        """Current records, oldest first; `emergency` keeps emergencies apart (section 5)."""
        query = sa.select(changes_table.c.record).order_by(changes_table.c.opened_at,
                                                           changes_table.c.change_id)
        if category is not None:
            query = query.where(changes_table.c.category == category)
        if emergency is True:
            query = query.where(changes_table.c.category == "emergency")
        elif emergency is False:
            query = query.where(sa.or_(changes_table.c.category.is_(None),
                                       changes_table.c.category != "emergency"))
        with self.engine.connect() as conn:
            return [ChangeRecord.model_validate_json(t) for t in conn.execute(query).scalars()]

    def head(self) -> tuple[int, str]:
        """The last sequence number and hash of the chain."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(head_table.c.seq, head_table.c.hash)).one()
            return int(row.seq), str(row.hash)

    def count(self) -> int:
        """How many events the log holds."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events_table))
                       .scalar_one())

    # -- verification and retention ----------------------------------------------------

    def _checkpoint(self, conn: Connection) -> tuple[int, str]:
        row = conn.execute(sa.select(checkpoints_table.c.seq, checkpoints_table.c.hash)
                           .order_by(checkpoints_table.c.id.desc()).limit(1)).first()
        return (int(row.seq), str(row.hash)) if row else (0, GENESIS)

    def verify(self) -> Verification:
        """Recompute the whole chain from its start or last checkpoint; name the first break."""
        conn = self.engine.connect()
        if self.dialect == "postgresql":  # one snapshot for the head and the events
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn:
            start_seq, prev = self._checkpoint(conn)
            head = conn.execute(sa.select(head_table.c.seq, head_table.c.hash)).one()
            head_seq, head_hash = int(head.seq), str(head.hash)
            sha256 = hashlib.sha256
            expected = start_seq + 1
            checked = 0
            for batch in self._raw_rows(conn):
                for seq, cid, typ, at, actor, payload, prev_hash, stored in batch:
                    body = SEP.join((str(seq), cid, typ, at, actor, payload, prev_hash))
                    if (seq != expected or seq > head_seq or prev_hash != prev
                            or sha256(body.encode("utf-8")).hexdigest() != stored):
                        bad, problem = _diagnose(seq, expected, head_seq, prev_hash, prev)
                        return Verification(False, checked, expected - 1, prev, bad,
                                            f"event {bad} ({cid}, {typ}): {problem}")
                    prev = stored
                    expected += 1
                    checked += 1
        last = expected - 1
        if (last, prev) != (head_seq, head_hash):
            return Verification(False, checked, last, prev, last + 1,
                                f"event {last + 1} (at the end): the chain head records event "
                                f"{head_seq} "
                                f"but the log ends at event {last}: events at the end were "
                                "deleted")
        return Verification(True, checked, last, prev)

    def _raw_rows(self, conn: Connection) -> Iterator[list[tuple[Any, ...]]]:
        """Every event as a plain tuple, in chain order, in batches, inside `conn`'s snapshot.

        Verification is bound by row fetching; the DBAPI cursor skips SQLAlchemy's row
        layer, and on PostgreSQL a server-side cursor keeps memory flat.
        """
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        query = ("SELECT seq, change_id, type, at, actor, payload, prev_hash, hash "
                 "FROM change_events ORDER BY seq")
        cursor = (dbapi.cursor(name="changeflow_verify") if self.dialect == "postgresql"
                  else dbapi.cursor())
        try:
            cursor.execute(query)
            while batch := cursor.fetchmany(20000):
                yield batch
        finally:
            cursor.close()

    def purge(self, cutoff: datetime, now: datetime, actor: str) -> int:
        """Delete events older than `cutoff`, recording a checkpoint to verify from.

        Only a prefix of the chain is removed (up to the first event at or after
        `cutoff`), so what remains is still one chain.

        Raises:
            RetentionError: `cutoff` is inside the retention period.
        """
        try:
            limit = now.replace(year=now.year - self.retention_years)
        except ValueError:  # 29 February
            limit = now.replace(year=now.year - self.retention_years, day=28)
        if cutoff > limit:
            raise RetentionError(
                f"events younger than {self.retention_years} years (before {limit:%Y-%m-%d}) "
                f"must be kept; refusing to purge up to {cutoff:%Y-%m-%d}")
        cutoff_text = format_time(cutoff)
        with self._write() as conn:
            self._lock_head(conn)
            first_kept = conn.execute(sa.select(sa.func.min(events_table.c.seq))
                                      .where(events_table.c.at >= cutoff_text)).scalar()
            query = sa.select(events_table.c.seq, events_table.c.hash)
            if first_kept is not None:
                query = query.where(events_table.c.seq < first_kept)
            last = conn.execute(query.order_by(events_table.c.seq.desc()).limit(1)).first()
            if last is None:
                return 0
            deleted = conn.execute(events_table.delete()
                                   .where(events_table.c.seq <= last.seq)).rowcount
            conn.execute(checkpoints_table.insert().values(
                seq=last.seq, hash=last.hash, cutoff=cutoff_text, purged_events=deleted,
                at=format_time(now), actor=actor))
            gone = sa.select(events_table.c.change_id).where(
                events_table.c.change_id == changes_table.c.change_id).exists()
            conn.execute(changes_table.delete().where(~gone))
        return int(deleted)


def _diagnose(seq: int, expected: int, head_seq: int, prev_hash: str,
              prev: str) -> tuple[int, str]:
    """Which event breaks the chain, and how, for a row that failed the fast check."""
    if seq > head_seq:
        return seq, (f"the chain head ends at event {head_seq}: this event was added "
                     "behind the log's back")
    if seq != expected:
        return expected, (f"missing (the next event found is {seq}): it was deleted or "
                          "renumbered")
    if prev_hash != prev:
        return seq, ("its previous-hash does not match the event before it: an event was "
                     "inserted, removed or reordered here")
    return seq, "its content does not match its hash: the event was edited"


def _to_event(row: Any) -> ChangeEvent:
    return ChangeEvent(seq=row.seq, change_id=row.change_id, type=row.type,
                       at=parse_time(row.at), actor=row.actor, payload=json.loads(row.payload),
                       prev_hash=row.prev_hash, hash=row.hash)
