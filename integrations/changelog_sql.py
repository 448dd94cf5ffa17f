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

import hashlib
import json
import os
import select
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.lifecycle import NOT_CHANGES, ChangeRecord, project
from domain.models import IDENTIFIER, ChangeEvent
from integrations.chain_worker import check_ranges, prepare
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
from integrations.ports import ChangeLogUnavailable


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


@dataclass(frozen=True)
class ParallelVerify:
    """How `verify` spreads the chain over processes.

    Attributes:
        min_events: a log with fewer events (since its checkpoint) is checked in this
            process alone.
        processes: processes in all, this one included; None: one per available core, at
            most 8.
        range_events: the most events in one range handed to a process. Ranges shrink
            toward the end of the chain, so that the processes finish together.
        min_range_events: the fewest events in one range.
        worker_timeout_s: the longest wait for a worker's answer on one range; past it the
            worker is killed and verification fails closed.
    """

    min_events: int = 100_000
    processes: int | None = None
    range_events: int = 100_000
    min_range_events: int = 5_000
    worker_timeout_s: float = 120.0


class SqlChangeLog:
    """The change log on a SQL database. Safe to share between processes."""

    def __init__(self, url: str, retention_years: int = 3,
                 parallel: ParallelVerify | None = None) -> None:
        """Connect and create the schema if needed.

        Args:
            url: a SQLAlchemy URL (`sqlite:///var/changeflow.db`, `postgresql://...`).
            retention_years: how long events are kept (policy section 7: at least 3).
            parallel: how `verify` uses the machine's cores (default: `ParallelVerify()`).
        """
        url = normalize_url(url)
        self.retention_years = retention_years
        self.parallel = parallel or ParallelVerify()
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
            integrations.ports.ChangeLogUnavailable: the database refused the write or
                could not be reached (read-only, full, down); the message names the events.
        """
        prepared = [self._prepare(e) for e in new]
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
        """Current records, oldest first; `emergency` keeps emergencies apart (section 5).

        Records that are not changes (prohibited-practice findings, the audit's runs) are
        left out.
        """
        query = sa.select(changes_table.c.record).where(
            changes_table.c.state.notin_(NOT_CHANGES)).order_by(changes_table.c.opened_at,
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
        """Recompute the whole chain from its start or last checkpoint; name the first break.

        The chain is checked range by range, on every core for a large log (see
        `ParallelVerify`); when a range does not hold, one pass over the chain names the
        first bad event, so the result is the same whichever way the chain was checked. A
        worker process that fails (cannot connect, crashes, times out) makes the result not
        ok, with a problem that says the chain could not be verified.
        """
        conn = self.engine.connect()
        if self.dialect == "postgresql":  # one snapshot for the head and the events
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn:
            start_seq, start_hash = self._checkpoint(conn)
            head = conn.execute(sa.select(head_table.c.seq, head_table.c.hash)).one()
            head_seq, head_hash = int(head.seq), str(head.hash)
            results, error = self._check_ranges(conn, start_seq, head_seq)
            if any(r["problem"] is not None for r in results):
                return self._trace(conn, start_seq, start_hash, head_seq, head_hash)
            if error is not None:
                return _not_verified(results, start_seq, start_hash, head_seq, error)
            if (_joined(results, start_seq, start_hash) == (head_seq, head_hash)
                    and self._nothing_outside(conn, start_seq, head_seq)):
                return Verification(True, head_seq - start_seq, head_seq, head_hash)
            return self._trace(conn, start_seq, start_hash, head_seq, head_hash)

    def _check_ranges(self, conn: Connection, start_seq: int,
                      head_seq: int) -> tuple[list[dict[str, Any]], str | None]:
        """Check events start_seq+1..head_seq in ranges: results, and why not all ran."""
        processes = self._processes(head_seq - start_seq)
        p = self.parallel
        ranges = _Ranges(start_seq + 1, head_seq, processes, p.min_range_events,
                         p.range_events)
        dbapi = conn.connection.driver_connection
        prepare(dbapi, self.dialect)  # for the diagnosis pass too
        results: list[dict[str, Any]] = []
        if processes == 1:
            _check_here(dbapi, self.dialect, ranges, results)
            return results, None
        workers = _Workers(self._worker_spec(conn), processes - 1, ranges,
                           p.worker_timeout_s)
        try:
            _check_here(dbapi, self.dialect, ranges, results)
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
        if self.dialect == "sqlite":
            path = os.path.abspath(self.engine.url.database or "")
            return {"dialect": "sqlite",
                    "database": f"file:{urllib.parse.quote(path)}?mode=ro"}
        _, params = self.engine.dialect.create_connect_args(self.engine.url)
        connect = {k: v for k, v in params.items() if isinstance(v, str | int | float | bool)}
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        return {"dialect": "postgresql", "connect": connect, "snapshot": snapshot}

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


def _check_here(dbapi: Any, dialect: str, ranges: _Ranges,
                results: list[dict[str, Any]]) -> None:
    """Check ranges in this process until none is left or one does not hold."""
    with closing(check_ranges(dbapi, dialect, iter(ranges.take, None))) as checked:
        for result in checked:
            results.append(result)
            if result["problem"] is not None:
                ranges.stop()
                break


def _joined(results: list[dict[str, Any]], start_seq: int,
            start_hash: str) -> tuple[int, str]:
    """The last event and hash reached through ranges that hold and join, from the start."""
    last, prev = start_seq, start_hash
    for r in sorted(results, key=lambda r: int(r["lo"])):
        if r["lo"] != last + 1 or r["problem"] is not None or r["first_prev"] != prev:
            break
        last, prev = int(r["hi"]), str(r["last_hash"])
    return last, prev


def _not_verified(results: list[dict[str, Any]], start_seq: int, start_hash: str,
                  head_seq: int, error: str) -> Verification:
    """Fail closed: what did verify, and why the rest could not be checked."""
    last, prev = _joined(results, start_seq, start_hash)
    return Verification(False, last - start_seq, last, prev, None,
                        f"the chain could not be verified: {error}; events {last + 1} to "
                        f"{head_seq} were not all checked")


WORKER_COMMAND = [sys.executable, "-P", "-m", "integrations.chain_worker"]
"""How a worker process starts. `-P` keeps the working directory off `sys.path`, so the
worker imports this package (through PYTHONPATH) wherever `verify` runs."""


class _Ranges:
    """Ranges of sequence numbers handed out in order, smaller toward the end."""

    def __init__(self, lo: int, hi: int, processes: int, smallest: int, largest: int) -> None:
        self.next, self.hi = lo, hi
        self.processes, self.smallest, self.largest = processes, smallest, largest
        self.lock = threading.Lock()

    def take(self) -> tuple[int, int] | None:
        """The next range, or None when there is none left or checking stopped."""
        with self.lock:
            if self.next > self.hi:
                return None
            remaining = self.hi - self.next + 1
            size = max(self.smallest, min(self.largest, remaining // (4 * self.processes)))
            lo = self.next
            self.next = min(self.hi, lo + size - 1) + 1
            return lo, self.next - 1

    def stop(self) -> None:
        """Hand out nothing more."""
        with self.lock:
            self.next = self.hi + 1


class _Workers:
    """Worker processes (`python -m integrations.chain_worker`), each fed by a thread.

    Each worker has up to two ranges in flight, so it never waits for the next one. The
    connection details go to the worker on stdin, never in argv.
    """

    IN_FLIGHT = 2

    def __init__(self, spec: dict[str, Any], count: int, ranges: _Ranges,
                 timeout_s: float) -> None:
        self.ranges, self.timeout_s = ranges, timeout_s
        self.secret = str(spec.get("connect", {}).get("password") or "")
        self.results: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        header = (json.dumps(spec) + "\n").encode()
        for _ in range(count):
            try:
                proc = subprocess.Popen(WORKER_COMMAND, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=env)
            except OSError as exc:
                self._fail(f"a worker process could not start: {exc}")
                break
            self.procs.append(proc)
            # The first ranges are handed out here, before this process takes any.
            in_flight: deque[tuple[int, int]] = deque()
            try:
                assert proc.stdin is not None
                proc.stdin.write(header)
                self._top_up(proc, in_flight)
            except OSError as exc:
                self._fail(f"a worker process failed: {exc}" + _ending(proc, kill=True))
                break
            thread = threading.Thread(target=self._serve, args=(proc, in_flight), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _top_up(self, proc: subprocess.Popen[bytes], in_flight: deque[tuple[int, int]]) -> None:
        """Keep the worker's ranges in flight; end its input as soon as none is left."""
        assert proc.stdin is not None
        if proc.stdin.closed:
            return
        while len(in_flight) < self.IN_FLIGHT:
            span = self.ranges.take()
            if span is None:
                proc.stdin.close()
                return
            in_flight.append(span)
            proc.stdin.write(f"{span[0]} {span[1]}\n".encode())
        proc.stdin.flush()

    def _fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message.replace(self.secret, "***") if self.secret else message)
        self.ranges.stop()

    def _serve(self, proc: subprocess.Popen[bytes], in_flight: deque[tuple[int, int]]) -> None:
        """Collect one worker's answers and feed it ranges, until none is left."""
        assert proc.stdin is not None and proc.stdout is not None
        reader = _LineReader(proc.stdout, self.timeout_s)
        try:
            while in_flight:
                lo, hi = in_flight.popleft()
                answer = reader.answer(lo, hi)
                if "error" in answer:
                    raise _WorkerFailed(f"the worker checking events {lo} to {hi} failed: "
                                        f"{answer['error']}")
                with self.lock:
                    self.results.append(answer)
                if answer["problem"] is not None:
                    self.ranges.stop()
                self._top_up(proc, in_flight)
        except _WorkerSilent as exc:
            self._fail(str(exc) + _ending(proc, kill=True))
        except _WorkerFailed as exc:
            self._fail(str(exc) + _ending(proc, kill=False))
        except (OSError, ValueError) as exc:  # a broken pipe, an answer that is not JSON
            self._fail(f"a worker process failed: {exc}" + _ending(proc, kill=True))
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def kill(self) -> None:
        """Stop every worker now; its ranges go unchecked."""
        self.ranges.stop()
        for proc in self.procs:
            proc.kill()

    def finish(self, results: list[dict[str, Any]]) -> str | None:
        """Wait for every worker; add their answers to `results`; the first failure."""
        for thread in self.threads:
            thread.join()
        for proc in self.procs:
            _ending(proc, kill=False)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        results.extend(self.results)
        return self.errors[0] if self.errors else None


class _WorkerFailed(Exception):
    """A worker answered with an error, or exited without answering."""


class _WorkerSilent(_WorkerFailed):
    """A worker did not answer in time."""


class _LineReader:
    """A worker's answers, one JSON line per range, each within a timeout."""

    def __init__(self, stream: IO[bytes], timeout_s: float) -> None:
        self.fd, self.timeout_s, self.buffer = stream.fileno(), timeout_s, b""

    def answer(self, lo: int, hi: int) -> dict[str, Any]:
        """The answer for range lo..hi."""
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], self.timeout_s)
            if not ready:
                raise _WorkerSilent(f"the worker checking events {lo} to {hi} did not answer "
                                    f"within {self.timeout_s:g} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise _WorkerFailed(f"the worker checking events {lo} to {hi} exited "
                                    "without answering")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer = json.loads(line)
        if not isinstance(answer, dict) or not ("error" in answer or _ANSWER <= answer.keys()):
            raise ValueError(f"unexpected answer {line[:100]!r}")
        if "error" not in answer and (answer["lo"], answer["hi"]) != (lo, hi):
            raise ValueError(f"answer for events {answer['lo']} to {answer['hi']}, "
                             f"expected {lo} to {hi}")
        return answer


_ANSWER = {"lo", "hi", "checked", "first_prev", "last_hash", "problem"}


def _ending(proc: subprocess.Popen[bytes], kill: bool) -> str:
    """Reap a worker (killing it first, or after 10 s): how it ended, its last stderr line."""
    if kill:
        proc.kill()
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    err = ""
    if proc.stderr is not None and not proc.stderr.closed:
        err = proc.stderr.read().decode(errors="replace").strip()
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    last = err.splitlines()[-1][:300] if err else ""
    return f" ({how}{': ' + last if last else ''})"


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
