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

`verify` checks the chain in ranges of sequence numbers (`integrations.chain_worker`). A
large log is spread over every core: ranges are handed out to worker processes and to
this one, and the joins between ranges are checked here. Any range that does not hold
sends verification to a one-pass diagnosis, which names the first bad event; a worker
that fails makes verification fail closed.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.events import (
    EffectFinished,
    EffectStarted,
    EventType,
    NewEvent,
    PayloadError,
    check_payload,
    payload_of,
)
from domain.lifecycle import EVENT_TYPES, NOT_CHANGES, ChangeRecord, fold, project
from domain.models import IDENTIFIER, ChangeEvent
from domain.practices import DEPLOYMENT_EVENTS, SUBMISSIONS
from integrations.chain_keys import ChainKeyError, ChainKeys
from integrations.chain_worker import prepare
from integrations.changelog_retention import purge
from integrations.changelog_schema import (
    GENESIS,
    SEP,
    canonical_payload,
    changes_table,
    checkpoints_table,
    event_hash,
    events_table,
    format_time,
    head_table,
    migrate,
    normalize_url,
    parse_time,
    record_digest,
    schema_ready,
    sqlite_engine,
)
from integrations.changelog_verify import (
    ParallelVerify,
    Ranges,
    Workers,
    check_here,
    diagnose,
    joined,
    not_verified,
)
from integrations.ports import ChainBroken, ChangeLogUnavailable, Verification


class RecordTampered(ChainBroken):
    """A change's cached record or events do not hold: edited, replayed or forged.

    Attributes:
        change_id: the change whose record does not hold.
    """

    def __init__(self, change_id: str, problem: str) -> None:
        super().__init__(f"{change_id}: {problem}")
        self.change_id = change_id


EXPORT_FIELDS = ("seq", "change_id", "type", "at", "actor", "payload", "prev_hash", "hash",
                 "key_id", "mac")
"""An exported event's fields, in the order the hash covers them (then its key and MAC)."""

CLOCK_BEHIND = "clock_behind"
"""Payload key of an event recorded when the clock was behind the chain's last event: the
clock's time. The event carries its predecessor's time instead, so times never go back."""


class SchemaMissing(Exception):
    """The schema is not there and this role may not create it."""


class ChangeBusy(Exception):
    """Another run holds the change's lock: it is taking the change through its steps."""


class SqlChangeLog:
    """The change log on a SQL database. Safe to share between processes."""

    def __init__(self, url: str, keys: ChainKeys, retention_years: int = 3,
                 parallel: ParallelVerify | None = None) -> None:
        """Connect and create the schema if needed.

        Args:
            url: a SQLAlchemy URL (`sqlite:///var/changeflow.db`, `postgresql://...`).
            keys: the chain keys: the first MACs what is written, all verify.
            retention_years: how long events are kept (policy section 7: at least 3).
            parallel: how `verify` uses the machine's cores (default: `ParallelVerify()`).
        """
        url = normalize_url(url)
        self.keys = keys
        self.retention_years = retention_years
        self.parallel = parallel or ParallelVerify()
        self._lock_mutex = threading.Lock()
        self._lock_conn: Connection | None = None
        self._held: set[str] = set()
        self.engine = (sqlite_engine(url) if url.startswith("sqlite")
                       else sa.create_engine(url, pool_pre_ping=True))
        self.dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            if not schema_ready(conn, self.dialect):
                try:
                    migrate(conn, self.dialect, retention_years)
                except sa.exc.ProgrammingError as exc:  # insufficient privilege
                    raise SchemaMissing(
                        "the change log's schema is missing or incomplete and this role may "
                        "not create it: run `changeflow migrate` as the schema's owner "
                        f"({type(exc.orig).__name__})") from None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction holding the append lock (SQLite: BEGIN IMMEDIATE)."""
        with self.engine.connect().execution_options(changeflow_write=True) as conn, \
                conn.begin():
            yield conn

    def close(self) -> None:
        """Release the connection pool (and with it any change lock this process holds)."""
        if self._lock_conn is not None:
            self._lock_conn.close()
            self._lock_conn = None
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
            integrations.ports.ChangeLogUnavailable: the database refused the write or
                could not be reached (read-only, full, down); the message names the events.
        """
        prepared = [prepare_event(e) for e in new]
        try:
            return self._append(prepared)
        except sa.exc.DBAPIError as exc:
            what = ", ".join(dict.fromkeys(f"{e.type} for {e.change_id}"
                                           for e, _, _ in prepared))
            reason = str(exc.orig or exc).strip().splitlines()[0][:300]
            raise ChangeLogUnavailable(f"the change log could not record {what} (nothing "
                                       f"was recorded): {type(exc.orig or exc).__name__}: "
                                       f"{reason}") from exc

    def _append(self, prepared: list[tuple[NewEvent, str, str]]) -> list[ChangeEvent]:
        with self._write() as conn:
            head = self._lock_head(conn)
            records = self._load_records(conn, {e.change_id for e, _, _ in prepared})
            existing = set(records)
            rows, written = chain_events(prepared, head, records, self.keys)
            if rows:
                conn.execute(events_table.insert(), rows)
                self._save_records(conn, records, existing)
                last = rows[-1]
                conn.execute(head_table.update().where(head_table.c.id == 1)
                             .values(seq=last["seq"], hash=last["hash"], at=last["at"]))
        return written

    def _lock_head(self, conn: Connection) -> tuple[int, str, str]:
        query = sa.select(head_table.c.seq, head_table.c.hash, head_table.c.at).where(
            head_table.c.id == 1)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one()
        return int(row.seq), str(row.hash), str(row.at)

    def _load_records(self, conn: Connection, change_ids: set[str]) -> dict[str, ChangeRecord]:
        """Cached records, each checked: its MAC, and that it is as of its change's last event.

        Raises:
            RecordTampered: a row was edited, or replaced by an older one of its change.
        """
        found: dict[str, ChangeRecord] = {}
        ids = sorted(change_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = conn.execute(sa.select(changes_table.c.change_id, changes_table.c.record,
                                          changes_table.c.key_id, changes_table.c.mac)
                                .where(changes_table.c.change_id.in_(chunk))).all()
            last = self._last_seqs(conn, chunk)
            for row in rows:
                record = self._checked_record(row, last)
                found[record.change_id] = record
        return found

    @staticmethod
    def _last_seqs(conn: Connection, change_ids: list[str] | None) -> dict[str, int]:
        """Each change's last event number (every change's when `change_ids` is None)."""
        query = sa.select(events_table.c.change_id, sa.func.max(events_table.c.seq)) \
            .group_by(events_table.c.change_id)
        if change_ids is not None:
            query = query.where(events_table.c.change_id.in_(change_ids))
        return {str(cid): int(seq) for cid, seq in conn.execute(query)}

    def _checked_record(self, row: Any, last: dict[str, int]) -> ChangeRecord:
        """A cached record row, or raise `RecordTampered` naming what is wrong."""
        problem = self._row_problem(row, last)
        if problem is not None:
            raise RecordTampered(str(row.change_id), problem)
        return ChangeRecord.model_validate_json(row.record)

    def _row_problem(self, row: Any, last: dict[str, int]) -> str | None:
        """What is wrong with a cached record row: its MAC, or the event it is as of."""
        cid = str(row.change_id)
        try:
            good = self.keys.mac(record_digest(row.record), row.key_id) == row.mac
        except ChainKeyError:
            good = False
        if not good:
            return ("its cached record's MAC does not hold: the changes table was edited "
                    "behind the log's back")
        fields = orjson.loads(row.record)
        if fields.get("change_id") != cid or last.get(cid) != fields.get("last_seq"):
            return (f"its cached record is as of event {fields.get('last_seq')} but its last "
                    f"event is {last.get(cid)}: the row was replaced by another")
        return None

    def _save_records(self, conn: Connection, records: dict[str, ChangeRecord],
                      existing: set[str]) -> None:
        key_id = self.keys.current.id
        rows = []
        for r in records.values():
            text = r.model_dump_json()
            rows.append({"id": r.change_id, "change_id": r.change_id,
                         "category": r.category.value if r.category else None,
                         "state": r.state, "outcome": r.outcome,
                         "opened_at": format_time(r.opened_at),
                         "updated_at": format_time(r.updated_at), "record": text,
                         "key_id": key_id, "mac": self.keys.mac(record_digest(text))})
        updates = [r for r in rows if r["id"] in existing]
        inserts = [{k: v for k, v in r.items() if k != "id"} for r in rows
                   if r["id"] not in existing]
        if updates:
            conn.execute(changes_table.update()
                         .where(changes_table.c.change_id == sa.bindparam("id"))
                         .values({k: sa.bindparam(k) for k in
                                  ("category", "state", "outcome", "opened_at", "updated_at",
                                   "record", "key_id", "mac")}),
                         [{k: v for k, v in r.items() if k != "change_id"} for r in updates])
        if inserts:
            conn.execute(changes_table.insert(), inserts)

    # -- one run per change ------------------------------------------------------------

    @contextmanager
    def change_lock(self, change_id: str) -> Iterator[None]:
        """Hold the change's lock: two runs of one change never interleave their steps.

        PostgreSQL: a session advisory lock on a connection held for the block; SQLite: an
        exclusive `flock` on a file beside the database. Either dies with its holder, so a
        run that is killed never leaves the change locked.

        Raises:
            ChangeBusy: another run holds it; nothing was done.
        """
        if self.dialect == "postgresql":
            with self._pg_lock(change_id):
                yield
            return
        with self._file_lock(change_id):
            yield

    @contextmanager
    def _pg_lock(self, change_id: str) -> Iterator[None]:
        """A session advisory lock, on one connection this process holds for all its locks.

        One connection, not one per run: a process may take hundreds of changes at once.
        A session's advisory locks are re-entrant, so this process's own holders are kept
        apart in `_held`.
        """
        key = int.from_bytes(hashlib.sha256(f"changeflow-change:{change_id}".encode())
                             .digest()[:8], "big", signed=True)
        with self._lock_mutex:
            if change_id in self._held:
                raise ChangeBusy(change_id)
            if self._lock_conn is None or self._lock_conn.closed:
                self._lock_conn = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
            got = self._lock_conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"),
                                          {"k": key}).scalar()
            if not got:
                raise ChangeBusy(change_id)
            self._held.add(change_id)
        try:
            yield
        finally:
            with self._lock_mutex:
                self._held.discard(change_id)
                try:
                    self._lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"),
                                            {"k": key})
                except sa.exc.DBAPIError:
                    self._lock_conn.invalidate()  # the session ends, and its locks with it
                    self._lock_conn = None

    @contextmanager
    def _file_lock(self, change_id: str) -> Iterator[None]:
        database = self.engine.url.database or ""
        if not self._can_share():  # in memory: one process
            folder = Path(tempfile.gettempdir()) / f"changeflow-locks-{os.getpid()}-{id(self)}"
        else:
            folder = Path(os.path.abspath(database) + ".locks")
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(change_id.encode()).hexdigest()[:32]
        with open(folder / f"{name}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ChangeBusy(change_id) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- side effects ----------------------------------------------------------------

    def record_intent(self, change_id: str, action: str, actor: str, details: dict[str, Any],
                      at: datetime) -> str:
        """Record that a side effect is about to happen; returns its effect id.

        Write the intent before acting and `record_outcome` after: a crash in between
        leaves an intent without an outcome, which `unfinished_effects` shows next time.
        """
        effect_id, event = intent(change_id, action, actor, details, at)
        self.append_many([event])
        return effect_id

    def record_outcome(self, change_id: str, effect_id: str, actor: str, ok: bool,
                       result: dict[str, Any], at: datetime) -> None:
        """Record how a side effect ended."""
        self.append_many([outcome(change_id, effect_id, actor, ok, result, at)])

    def unfinished_effects(self, change_id: str | None = None) -> list[ChangeEvent]:
        """Intents with no recorded outcome: side effects that may or may not have happened."""
        query = sa.select(events_table).where(
            events_table.c.type.in_((EventType.EFFECT_STARTED, EventType.EFFECT_FINISHED)))
        if change_id is not None:
            query = query.where(events_table.c.change_id == change_id)
        with self.engine.connect() as conn:
            return open_effects(_to_event(row)
                                for row in conn.execute(query.order_by(events_table.c.seq)))

    # -- reading ---------------------------------------------------------------------

    def events(self, change_id: str) -> list[ChangeEvent]:
        """A change's events in order, each checked against its hash and MAC.

        Raises:
            RecordTampered: an event's content, hash or MAC does not hold.
        """
        with self.engine.connect() as conn:
            return self._checked_events(conn, change_id)

    def _checked_events(self, conn: Connection, change_id: str) -> list[ChangeEvent]:
        rows = conn.execute(sa.select(events_table)
                            .where(events_table.c.change_id == change_id)
                            .order_by(events_table.c.seq)).all()
        for row in rows:
            problem = self._event_problem(row)
            if problem:
                raise RecordTampered(change_id, f"event {row.seq} ({row.type}): {problem}")
        return [_to_event(r) for r in rows]

    def _event_problem(self, row: Any) -> str | None:
        """What is wrong with one stored event on its own (not its place in the chain)."""
        digest = event_hash(row.seq, row.change_id, row.type, row.at, row.actor, row.payload,
                            row.prev_hash)
        if digest != row.hash:
            return "its content does not match its hash: the event was edited"
        return self._mac_problem(row.hash, row.key_id, row.mac)

    def _snapshot(self) -> Connection:
        """A connection whose reads all see one moment of the log (until it is closed)."""
        conn = self.engine.connect()
        if self.dialect == "postgresql":
            return conn.execution_options(isolation_level="REPEATABLE READ")
        return conn  # SQLite: a read transaction in WAL mode is a snapshot

    def check_change(self, change_id: str) -> list[str]:
        """Whether a change's record holds; the problems of `checked_events`."""
        return self.checked_events(change_id)[1]

    def checked_events(self, change_id: str) -> tuple[list[ChangeEvent], list[str]]:
        """A change's events, and whether its record holds: what production relies on.

        Each of its events must hold on its own (hash, MAC) and in its place (linked to the
        events before and after it in the chain, not before its predecessor in time), and
        the cached record must be the fold of those events. Everything is read in one
        snapshot, so an append meanwhile is no false alarm.

        Returns:
            The events (in order), and problems, each naming the change and what is wrong;
            no problems when the record holds.
        """
        with self._snapshot() as conn, conn.begin():
            try:
                events = self._checked_events(conn, change_id)
            except RecordTampered as exc:
                return [], [str(exc)]
            if not events:
                return [], []
            problems = self._links(conn, change_id, events)
            row = conn.execute(sa.select(changes_table.c.change_id, changes_table.c.record,
                                         changes_table.c.key_id, changes_table.c.mac)
                               .where(changes_table.c.change_id == change_id)).first()
            last = self._last_seqs(conn, [change_id])
        folded = fold(events)
        try:
            cached = self._checked_record(row, last) if row is not None else None
        except RecordTampered as exc:
            return events, [*problems, f"{exc}; its events say {_summary(folded)}"]
        if cached != folded:
            problems.append(f"{change_id}: its cached record says "
                            f"{_summary(cached) if cached else 'nothing'} but its events say "
                            f"{_summary(folded)}")
        return events, problems

    def _links(self, conn: Connection, change_id: str,
               events: list[ChangeEvent]) -> list[str]:
        """Problems with where a change's events sit: their neighbours in the chain."""
        seqs = {e.seq for e in events}
        wanted = sorted({s - 1 for s in seqs} | {s + 1 for s in seqs})
        near = {int(r.seq): r for r in conn.execute(
            sa.select(events_table.c.seq, events_table.c.hash, events_table.c.prev_hash,
                      events_table.c.at).where(events_table.c.seq.in_(wanted)))}
        start_seq, start_hash = self._checkpoint(conn)
        head_seq = self._head(conn)[0]
        problems = []
        for e in events:
            before = near.get(e.seq - 1)
            if e.seq - 1 == start_seq:
                linked = e.prev_hash == start_hash
            else:
                linked = before is not None and before.hash == e.prev_hash
            if not linked:
                problems.append(f"{change_id}: event {e.seq} ({e.type}) does not follow the "
                                "event before it in the chain: events were removed or "
                                "inserted there")
            elif before is not None and format_time(e.at) < before.at:
                problems.append(f"{change_id}: event {e.seq} ({e.type}) is dated before "
                                "the event before it")
            after = near.get(e.seq + 1)
            if e.seq < head_seq and (after is None or after.prev_hash != e.hash):
                problems.append(f"{change_id}: the event after event {e.seq} ({e.type}) "
                                "does not follow it: events were removed there")
        return problems

    def _head(self, conn: Connection) -> tuple[int, str]:
        row = conn.execute(sa.select(head_table.c.seq, head_table.c.hash)).one()
        return int(row.seq), str(row.hash)

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

    def deployment_events(self, since: datetime | None = None) -> list[ChangeEvent]:
        """The practices audit's facts in one query (see `ports.ChangeLog`), each checked.

        Raises:
            RecordTampered: an event's content, hash or MAC does not hold.
        """
        e, facts = events_table, events_table.alias("facts")
        kinds = sorted(DEPLOYMENT_EVENTS)
        wanted: sa.ColumnElement[bool] = e.c.type.in_(kinds)
        theirs: sa.ColumnElement[bool] = facts.c.type.in_(kinds)
        if since is not None:
            wanted = sa.and_(wanted, e.c.at >= format_time(since))
            theirs = sa.and_(theirs, facts.c.at >= format_time(since))
        query = sa.select(e).where(sa.or_(wanted, sa.and_(
            e.c.type.in_(sorted(SUBMISSIONS)),
            e.c.change_id.in_(sa.select(facts.c.change_id).where(theirs))))).order_by(e.c.seq)
        found = []
        with self.engine.connect() as conn:
            for row in conn.execution_options(stream_results=True,
                                              yield_per=5000).execute(query):
                problem = self._event_problem(row)
                if problem:
                    raise RecordTampered(row.change_id,
                                         f"event {row.seq} ({row.type}): {problem}")
                found.append(_to_event(row))
        return found

    def last_succeeded(self, service: str, excluding: str) -> ChangeRecord | None:
        """The change of `service` whose verification passed last (see `ports.ChangeLog`).

        Walks `verification_passed` events from the newest, keeping those of changes a
        submission names `service` for (the events table cannot be updated, so no edit
        hides one), and folds each candidate's checked events until one holds.

        Raises:
            RecordTampered: a candidate's event does not hold.
        """
        e, submitted = events_table, events_table.alias("submitted")
        named = sa.exists().where(submitted.c.change_id == e.c.change_id,
                                  submitted.c.type.in_(sorted(SUBMISSIONS)),
                                  self._service_of(submitted.c.payload) == service)
        query = (sa.select(e.c.change_id)
                 .where(e.c.type == EventType.VERIFICATION_PASSED, e.c.change_id != excluding,
                        named)
                 .order_by(e.c.seq.desc()))
        with self.engine.connect() as conn:
            for (change_id,) in conn.execution_options(stream_results=True,
                                                       yield_per=20).execute(query):
                record = self.record(str(change_id))
                if record is not None and succeeded_in(record, service):
                    return record
        return None

    def _service_of(self, payload: Any) -> Any:
        """The SQL for an event payload's `service` field, as text."""
        if self.dialect == "postgresql":
            return sa.func.json_extract_path_text(sa.cast(payload, sa.JSON), "service")
        return sa.func.json_extract(payload, "$.service")

    def record(self, change_id: str) -> ChangeRecord | None:
        """A change's current record, folded from its checked events; None if it has none.

        Raises:
            RecordTampered: one of its events does not hold.
        """
        events = self.events(change_id)
        return fold(events) if events else None

    def changes(self, category: str | None = None,
                emergency: bool | None = None) -> list[ChangeRecord]:
        """Current records, oldest first; `emergency` keeps emergencies apart (section 5).

        Records that are not changes (prohibited-practice findings, the audit's runs) are
        left out. They come from the cache, each row checked (its MAC, and that it is as of
        its change's last event), and chosen by what the checked record says: no column of
        the table decides what is listed, so an edited column cannot hide a change.

        Raises:
            RecordTampered: a cached record was edited, replaced or deleted; the message
                names it.
        """
        query = sa.select(changes_table.c.change_id, changes_table.c.record,
                          changes_table.c.key_id, changes_table.c.mac)
        with self._snapshot() as conn, conn.begin():  # rows and last events of one moment
            rows = conn.execute(query).all()
            last = self._last_seqs(conn, None)
        missing = sorted(set(last) - {str(r.change_id) for r in rows})
        if missing:
            raise RecordTampered(missing[0], "it has events but no cached record: the row "
                                             "was deleted")
        found = [self._checked_record(row, last) for row in rows]
        wanted = [r for r in found if r.state not in NOT_CHANGES
                  and (category is None or r.category == category)
                  and (emergency is None or r.emergency is emergency)]
        return sorted(wanted, key=lambda r: (r.opened_at, r.change_id))

    def active(self, start: datetime, end: datetime,
               hashes: bool = False) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
        """The records and events of the changes active in [start, end), for a report.

        A change is active when its first event is before `end` and its last at or after
        `start`, as its events say. Each cached record is checked; one that does not hold
        (edited, replaced, deleted) is not used: the change's record is folded from its
        checked events instead (`verify` names the row).

        Returns:
            (change_id, record JSON) oldest first; and every event of those changes as
            (seq, change_id, type, at, actor, payload[, hash]) in chain order.

        Raises:
            RecordTampered: an event of a change whose row does not hold does not hold.
        """
        e = events_table
        spans = (sa.select(e.c.change_id, sa.func.min(e.c.at).label("first"),
                           sa.func.max(e.c.seq).label("last"))
                 .group_by(e.c.change_id)
                 .having(sa.and_(sa.func.min(e.c.at) < format_time(end),
                                 sa.func.max(e.c.at) >= format_time(start))))
        ids = sa.select(spans.subquery().c.change_id)
        columns = [e.c.seq, e.c.change_id, e.c.type, e.c.at, e.c.actor, e.c.payload]
        columns += [e.c.hash] if hashes else []
        with self._snapshot() as conn, conn.begin():
            found = conn.execute(spans).all()
            rows = {str(r.change_id): r for r in conn.execute(
                sa.select(changes_table.c.change_id, changes_table.c.record,
                          changes_table.c.key_id, changes_table.c.mac)
                .where(changes_table.c.change_id.in_(ids)))}
            events = [tuple(r) for r in conn.execute(
                sa.select(*columns).where(e.c.change_id.in_(ids)).order_by(e.c.seq))]
        last = {str(s.change_id): int(s.last) for s in found}
        records = []
        for span in sorted(found, key=lambda s: (s.first, s.change_id)):
            cid = str(span.change_id)
            row = rows.get(cid)
            if row is not None and self._row_problem(row, last) is None:
                records.append((cid, str(row.record)))
            else:
                records.append((cid, fold(self.events(cid)).model_dump_json()))
        return records, events

    def head(self) -> tuple[int, str]:
        """The last sequence number and hash of the chain."""
        with self.engine.connect() as conn:
            return self._head(conn)

    def anchor_problem(self, seq: int, hash_: str) -> str | None:
        """Why the chain no longer holds event `seq` with hash `hash_`; None if it does.

        An anchor at or before the last checkpoint (purged after the retention period) holds
        when it is the checkpoint itself, and is not checkable otherwise: None.
        """
        with self._snapshot() as conn:
            start = self._checkpoint(conn)
            head_seq, _ = self._head(conn)
            stored = conn.execute(sa.select(events_table.c.hash)
                                  .where(events_table.c.seq == seq)).scalar()
        return anchor_held(seq, hash_, start, head_seq, stored)

    def head_with_time(self) -> tuple[int, str, str]:
        """The chain's last sequence number, hash and time text ("" for an empty log)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(head_table.c.seq, head_table.c.hash,
                                         head_table.c.at)).one()
            return int(row.seq), str(row.hash), str(row.at)

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

    def verify(self, fold_changes: bool = False) -> Verification:
        """Check the whole log: the chain from its start or last checkpoint, and the cache.

        The chain is checked range by range, on every core for a large log (see
        `ParallelVerify`): each event's hash, MAC and time; when a range does not hold, one
        pass over the chain names the first bad event, so the result is the same whichever
        way the chain was checked. A worker process that fails (cannot connect, crashes,
        times out) makes the result not ok, with a problem that says the chain could not be
        verified. Then every cached change record is checked (its MAC, and that it is as of
        its change's last event), and with `fold_changes` also folded again from its events
        and compared; each record that does not hold is named in `mismatches`.
        """
        result = self._verify_chain()
        mismatches = self._check_cache(fold_changes)
        if not mismatches:
            return result
        return dataclasses.replace(result, ok=False, mismatches=tuple(mismatches))

    def _check_cache(self, fold_changes: bool) -> list[str]:
        """Every cached record that does not hold, named with what is wrong."""
        with self._snapshot() as conn, conn.begin():
            rows = conn.execute(sa.select(changes_table.c.change_id, changes_table.c.record,
                                          changes_table.c.key_id, changes_table.c.mac)
                                .order_by(changes_table.c.change_id)).all()
            last = self._last_seqs(conn, None)
            head_seq = self._head(conn)[0]
        problems, good = [], {}
        for row in rows:
            problem = self._row_problem(row, last)
            if problem is None:
                good[str(row.change_id)] = row.record
            else:
                problems.append(f"{row.change_id}: {problem}")
        missing = sorted(set(last) - {str(r.change_id) for r in rows})
        problems += [f"{cid}: it has events but no cached record" for cid in missing]
        if fold_changes:
            for cid, folded in self._fold_all(head_seq):
                if cid not in good:
                    continue
                cached = ChangeRecord.model_validate_json(good[cid])
                if cached != folded:
                    problems.append(f"{cid}: its cached record says {_summary(cached)} "
                                    f"but its events say {_summary(folded)}")
        return problems

    def _fold_all(self, head_seq: int) -> Iterator[tuple[str, ChangeRecord]]:
        """Every change's record folded from its events up to `head_seq`, in chain order.

        Appends after `head_seq` (after the cache was read) are left out, so the fold is of
        the moment the cache was read.
        """
        records: dict[str, ChangeRecord] = {}
        query = sa.select(events_table).where(events_table.c.seq <= head_seq) \
            .order_by(events_table.c.seq)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=5000).execute(query)
            for row in result:
                records[row.change_id] = project(records.get(row.change_id), row.change_id,
                                                 row.type, json.loads(row.payload),
                                                 parse_time(row.at), row.seq)
        yield from records.items()

    def _verify_chain(self) -> Verification:
        """The chain's check (see `verify`)."""
        with self._snapshot() as conn:  # one snapshot for the head and the events
            start_seq, start_hash = self._checkpoint(conn)
            head = conn.execute(sa.select(head_table.c.seq, head_table.c.hash)).one()
            head_seq, head_hash = int(head.seq), str(head.hash)
            results, error = self._check_ranges(conn, start_seq, head_seq)
            if any(r["problem"] is not None for r in results):
                return self._trace(conn, start_seq, start_hash, head_seq, head_hash)
            if error is not None:
                return not_verified(results, start_seq, start_hash, head_seq, error)
            if (joined(results, start_seq, start_hash) == (head_seq, head_hash)
                    and self._nothing_outside(conn, start_seq, head_seq)):
                return Verification(True, head_seq - start_seq, head_seq, head_hash)
            return self._trace(conn, start_seq, start_hash, head_seq, head_hash)

    def _check_ranges(self, conn: Connection, start_seq: int,
                      head_seq: int) -> tuple[list[dict[str, Any]], str | None]:
        """Check events start_seq+1..head_seq in ranges: results, and why not all ran."""
        processes = self._processes(head_seq - start_seq)
        p = self.parallel
        ranges = Ranges(start_seq + 1, head_seq, processes, p.min_range_events,
                         p.range_events)
        dbapi = conn.connection.driver_connection
        prepare(dbapi, self.dialect)  # for the diagnosis pass too
        results: list[dict[str, Any]] = []
        mac_keys = {k: bytes.fromhex(v) for k, v in self.keys.mac_keys().items()}
        if processes == 1:
            check_here(dbapi, self.dialect, mac_keys, ranges, results)
            return results, None
        workers = Workers(self._worker_spec(conn), processes - 1, ranges,
                           p.worker_timeout_s)
        try:
            check_here(dbapi, self.dialect, mac_keys, ranges, results)
        except BaseException:
            workers.kill()
            workers.finish(results)
            raise
        if any(r["problem"] is not None for r in results):
            workers.kill()  # the diagnosis pass reads everything anyway
        return results, workers.finish(results)

    def _processes(self, events: int) -> int:
        """How many processes check a chain of `events` events, this one included."""
        p = self.parallel
        if events < p.min_events or os.name != "posix" or not self._can_share():
            return 1
        if p.processes is not None:
            return max(1, p.processes)
        cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
        return max(1, min(cores, 8))

    def _can_share(self) -> bool:
        """Whether a worker process can open this database (not an in-memory SQLite)."""
        if self.dialect == "postgresql":
            return True
        database = self.engine.url.database or ""
        return (self.dialect == "sqlite" and database not in ("", ":memory:")
                and not database.startswith("file:") and not self.engine.url.query)

    def _worker_spec(self, conn: Connection) -> dict[str, Any]:
        """What a worker needs to read the events in this snapshot; holds the password."""
        mac_keys = self.keys.mac_keys()
        if self.dialect == "sqlite":
            path = os.path.abspath(self.engine.url.database or "")
            return {"dialect": "sqlite", "mac_keys": mac_keys,
                    "database": f"file:{urllib.parse.quote(path)}?mode=ro"}
        _, params = self.engine.dialect.create_connect_args(self.engine.url)
        connect = {k: v for k, v in params.items() if isinstance(v, str | int | float | bool)}
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        return {"dialect": "postgresql", "connect": connect, "snapshot": snapshot,
                "mac_keys": mac_keys}

    @staticmethod
    def _nothing_outside(conn: Connection, start_seq: int, head_seq: int) -> bool:
        """No event before the start (checkpoint) or after the head of the chain."""
        low = conn.execute(sa.select(sa.func.min(events_table.c.seq))).scalar()
        high = conn.execute(sa.select(sa.func.max(events_table.c.seq))).scalar()
        if low is None and high is None:
            return True
        return (isinstance(low, int) and isinstance(high, int)  # not a real, nor text
                and low > start_seq and high <= head_seq)

    def _trace(self, conn: Connection, start_seq: int, prev: str, head_seq: int,
               head_hash: str) -> Verification:
        """One pass over every event, in order: the first one that breaks the chain."""
        sha256 = hashlib.sha256
        expected = start_seq + 1
        checked = 0
        prev_at = ""
        for batch in self._raw_rows(conn):
            for seq, cid, typ, at, actor, payload, prev_hash, stored, key_id, mac in batch:
                body = SEP.join((str(seq), cid, typ, at, actor, payload, prev_hash))
                problem = None
                if (seq != expected or seq > head_seq or prev_hash != prev
                        or sha256(body.encode("utf-8")).hexdigest() != stored):
                    bad, problem = diagnose(seq, expected, head_seq, prev_hash, prev)
                elif at < prev_at:
                    bad, problem = seq, (f"it is dated {at}, before the event before it "
                                         f"({prev_at}): times in the log may not go back")
                else:
                    bad = seq
                    problem = self._mac_problem(stored, key_id, mac)
                if problem is not None:
                    return Verification(False, checked, expected - 1, prev, bad,
                                        f"event {bad} ({cid}, {typ}): {problem}")
                prev, prev_at = stored, at
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

    def _mac_problem(self, event_hash_: str, key_id: str, mac: str) -> str | None:
        try:
            good = self.keys.mac(event_hash_, key_id) == mac
        except ChainKeyError:
            return (f"it names chain key {key_id!r}, which is not one of the keys: it was "
                    "not written by changeflow")
        return None if good else (f"its MAC does not hold under key {key_id!r}: it was "
                                  "not written by changeflow (forged, or its hash recomputed)")

    def _raw_rows(self, conn: Connection,
                  upto: int | None = None) -> Iterator[list[tuple[Any, ...]]]:
        """Every event (up to seq `upto`) as a plain tuple, in chain order, in batches.

        Read inside `conn`'s snapshot.
        Verification is bound by row fetching; the DBAPI cursor skips SQLAlchemy's row
        layer, and on PostgreSQL a server-side cursor keeps memory flat.
        """
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        query = ("SELECT seq, change_id, type, at, actor, payload, prev_hash, hash, key_id, "
                 "mac FROM change_events" + ("" if upto is None else f" WHERE seq <= {int(upto)}")
                 + " ORDER BY seq")
        cursor = (dbapi.cursor(name="changeflow_verify") if self.dialect == "postgresql"
                  else dbapi.cursor())
        try:
            cursor.execute(query)
            while batch := cursor.fetchmany(20000):
                yield batch
        finally:
            cursor.close()

    def event_time(self, seq: int) -> str:
        """The stored (hashed) time text of event `seq`; "" if there is none."""
        with self.engine.connect() as conn:
            return str(conn.execute(sa.select(events_table.c.at)
                                    .where(events_table.c.seq == seq)).scalar() or "")

    def chain_start(self) -> tuple[int, str]:
        """Where the kept chain starts: (0, genesis), or the last purge's checkpoint."""
        with self.engine.connect() as conn:
            return self._checkpoint(conn)

    def export(self, upto: int) -> Iterator[dict[str, Any]]:
        """Every event from the chain's start up to event `upto`, exactly as stored.

        The time and payload are their hashed text: what an evidence pack holds.
        """
        with self._snapshot() as conn, conn.begin():
            for batch in self._raw_rows(conn, upto):
                for row in batch:
                    yield dict(zip(EXPORT_FIELDS, row, strict=True))

    def purge(self, cutoff: datetime, now: datetime, actor: str) -> int:
        """Delete events older than `cutoff`, recording a checkpoint to verify from.

        See `integrations.changelog_retention.purge`.

        Raises:
            RetentionError: `cutoff` is inside the retention period.
        """
        return purge(self, cutoff, now, actor)


def prepare_event(e: NewEvent) -> tuple[NewEvent, str, str]:
    """An event checked and encoded for the chain: (event, time text, payload text).

    Raises:
        ValueError: a malformed id or actor, a naive time, a payload that is not JSON.
        domain.events.PayloadError: a payload that is not its type's.
    """
    e = dataclasses.replace(e, type=str(e.type))  # an EventType stored as its plain name
    for name, value in (("change id", e.change_id), ("actor", e.actor)):
        if not IDENTIFIER.match(value):
            raise ValueError(f"{name} {value!r} is malformed: use letters, digits and "
                             "._:@+- (no spaces), at most 128 characters")
    at_text = format_time(e.at)
    try:
        payload_text = canonical_payload(e.payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload of {e.type!r} for {e.change_id} is not JSON: {exc}") \
            from None
    if e.type in EVENT_TYPES:  # an unknown type is the state machine's to refuse
        try:
            check_payload(e.type, e.payload)
        except PayloadError as exc:
            raise PayloadError(f"{e.change_id}: {exc}") from None
    return e, at_text, payload_text


def chain_events(prepared: Sequence[tuple[NewEvent, str, str]], head: tuple[int, str, str],
                 records: dict[str, ChangeRecord], keys: ChainKeys,
                 ) -> tuple[list[dict[str, Any]], list[ChangeEvent]]:
    """Chain prepared events after `head` (seq, hash, time): the rows to store and the events.

    Each event is numbered, dated no earlier than the one before it (recording the clock's
    time in `clock_behind` when it was behind), folded into its change's record in
    `records` (which the state machine may refuse), hashed and MAC'd with the current key.

    Returns:
        The rows (`EXPORT_FIELDS`) and the events as appended, in order.
    """
    seq, prev, prev_at = head
    rows: list[dict[str, Any]] = []
    written: list[ChangeEvent] = []
    for e, at_text, payload_text in prepared:
        seq += 1
        if at_text < prev_at:  # the clock is behind the chain: time never goes back
            e = NewEvent(e.change_id, e.type, e.actor, {**e.payload, CLOCK_BEHIND: at_text},
                         parse_time(prev_at))
            at_text, payload_text = prev_at, canonical_payload(e.payload)
        records[e.change_id] = project(records.get(e.change_id), e.change_id, e.type,
                                       e.payload, e.at, seq)
        digest = event_hash(seq, e.change_id, e.type, at_text, e.actor, payload_text, prev)
        rows.append(dict(zip(EXPORT_FIELDS, (
            seq, e.change_id, e.type, at_text, e.actor, payload_text, prev, digest,
            keys.current.id, keys.mac(digest)), strict=True)))
        written.append(ChangeEvent(seq=seq, change_id=e.change_id, type=e.type,
                                   at=parse_time(at_text), actor=e.actor, payload=e.payload,
                                   prev_hash=prev, hash=digest))
        prev, prev_at = digest, at_text
    return rows, written


def anchor_held(seq: int, hash_: str, start: tuple[int, str], head_seq: int,
                stored: str | None) -> str | None:
    """Why the chain no longer holds the anchor (`seq`, `hash_`); None if it does.

    The chain runs from `start` (its checkpoint) to `head_seq`, and its event `seq` has
    the hash `stored` (None: there is no such event). See `SqlChangeLog.anchor_problem`.
    """
    start_seq, start_hash = start
    if seq == start_seq and start_seq:
        return None if hash_ == start_hash else (
            f"the checkpoint at event {seq} has hash {start_hash}, not {hash_}")
    if seq < start_seq:
        return None
    if seq > head_seq:
        return (f"the chain ends at event {head_seq}, before the anchored event {seq}: "
                "events at the end were removed")
    if stored is None:
        return f"event {seq} is missing: it was deleted"
    if stored != hash_:
        return (f"event {seq} now has hash {stored}, not the anchored {hash_}: the chain "
                "was rewritten up to it")
    return None


def intent(change_id: str, action: str, actor: str, details: dict[str, Any],
           at: datetime) -> tuple[str, NewEvent]:
    """A side effect's intent, to append before acting: its new effect id and its event."""
    effect_id = uuid.uuid4().hex
    return effect_id, NewEvent(change_id, EventType.EFFECT_STARTED, actor,
                               {"effect_id": effect_id, "action": action, "details": details},
                               at)


def outcome(change_id: str, effect_id: str, actor: str, ok: bool, result: dict[str, Any],
            at: datetime) -> NewEvent:
    """A side effect's outcome, to append once it ended."""
    return NewEvent(change_id, EventType.EFFECT_FINISHED, actor,
                    {"effect_id": effect_id, "ok": ok, "result": result}, at)


def succeeded_in(record: ChangeRecord, service: str) -> bool:
    """Whether the record is a change of `service` that succeeded, with a version."""
    return record.service == service and record.outcome == "succeeded" and bool(record.version)


def open_effects(events: Iterable[ChangeEvent]) -> list[ChangeEvent]:
    """The intents among `events` (in order) that no outcome followed."""
    started: dict[str, ChangeEvent] = {}
    for event in events:
        if event.type == EventType.EFFECT_STARTED:
            started[payload_of(event, EffectStarted).effect_id] = event
        elif event.type == EventType.EFFECT_FINISHED:
            started.pop(payload_of(event, EffectFinished).effect_id, None)
    return list(started.values())


def _to_event(row: Any) -> ChangeEvent:
    return ChangeEvent(seq=row.seq, change_id=row.change_id, type=row.type,
                       at=parse_time(row.at), actor=row.actor, payload=json.loads(row.payload),
                       prev_hash=row.prev_hash, hash=row.hash)


def _summary(record: ChangeRecord) -> str:
    return (f"state {record.state}, outcome {record.outcome or '-'}, category "
            f"{record.category.value if record.category else '-'}, approvers "
            f"{', '.join(record.approvers) or '-'}")
