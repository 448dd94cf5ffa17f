"""The change log in memory: the same chain, keys, state machine and checks as on SQL.

For tests whose subject is not the database: events are encoded, hashed and MAC'd by
the same functions as `SqlChangeLog` (so an exported chain verifies the same way), every
append goes through the state machine and the payload models, and the cached records
are checked against their MACs like the SQL table's. It lives in one process; a lock
makes appends atomic, and `change_lock` holds a change for one run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from domain.events import EventType, NewEvent
from domain.lifecycle import NOT_CHANGES, ChangeRecord, fold
from domain.models import ChangeEvent
from domain.practices import DEPLOYMENT_EVENTS, SUBMISSIONS
from integrations.chain_keys import ChainKeyError, ChainKeys
from integrations.changelog_retention import check_retention
from integrations.changelog_schema import (
    GENESIS,
    event_hash,
    format_time,
    parse_time,
    record_digest,
)
from integrations.changelog_sql import (
    EXPORT_FIELDS,
    ChangeBusy,
    RecordTampered,
    anchor_held,
    chain_events,
    intent,
    open_effects,
    outcome,
    prepare_event,
    succeeded_in,
)
from integrations.ports import Verification


class MemoryChangeLog:
    """The `ChangeLog` port in memory (see the module doc)."""

    def __init__(self, keys: ChainKeys, retention_years: int = 3) -> None:
        """An empty log MAC'd with `keys`."""
        self.keys = keys
        self.retention_years = retention_years
        self.rows: list[dict[str, Any]] = []
        """The stored events, as `export` gives them; a test may edit them as an attacker."""
        self.cache: dict[str, tuple[str, str, str]] = {}
        """change id -> (record JSON, key id, MAC): the cached records."""
        self._start = (0, GENESIS)
        self._lock = threading.RLock()
        self._held: set[str] = set()

    # -- writing -------------------------------------------------------------------------

    def append(self, change_id: str, type: str, actor: str, payload: dict[str, Any],
               at: datetime) -> ChangeEvent:
        """Append one event; see `append_many`."""
        return self.append_many([NewEvent(change_id, type, actor, payload, at)])[0]

    def append_many(self, new: Sequence[NewEvent]) -> list[ChangeEvent]:
        """Append events at once, in order: all are kept or none."""
        prepared = [prepare_event(e) for e in new]
        with self._lock:
            head = (*self._head(), self.rows[-1]["at"] if self.rows else "")
            records = {cid: found for cid in {e.change_id for e, _, _ in prepared}
                       if (found := self._cached(cid)) is not None}
            rows, written = chain_events(prepared, head, records, self.keys)
            self.rows += rows
            for cid, record in records.items():
                text = record.model_dump_json()
                self.cache[cid] = (text, self.keys.current.id, self.keys.mac(record_digest(text)))
        return written

    def record_intent(self, change_id: str, action: str, actor: str, details: dict[str, Any],
                      at: datetime) -> str:
        """Record that a side effect is about to happen; returns its effect id."""
        effect_id, event = intent(change_id, action, actor, details, at)
        self.append_many([event])
        return effect_id

    def record_outcome(self, change_id: str, effect_id: str, actor: str, ok: bool,
                       result: dict[str, Any], at: datetime) -> None:
        """Record how a side effect ended."""
        self.append_many([outcome(change_id, effect_id, actor, ok, result, at)])

    @contextmanager
    def change_lock(self, change_id: str) -> Iterator[None]:
        """Hold the change for one run; raises `ChangeBusy` if another run holds it."""
        with self._lock:
            if change_id in self._held:
                raise ChangeBusy(change_id)
            self._held.add(change_id)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(change_id)

    def purge(self, cutoff: datetime, now: datetime, actor: str) -> int:
        """Drop the chain's prefix older than `cutoff`; the rest verifies from its checkpoint.

        Every change that goes on past the cutoff is kept whole (as on SQL).
        """
        check_retention(now, self.retention_years, cutoff)
        cutoff_text = format_time(cutoff)
        with self._lock:
            going_on = {r["change_id"] for r in self.rows if r["at"] >= cutoff_text}
            first_kept = next((i for i, r in enumerate(self.rows)
                               if r["change_id"] in going_on), len(self.rows))
            if first_kept == 0:
                return 0
            gone, self.rows = self.rows[:first_kept], self.rows[first_kept:]
            self._start = (int(gone[-1]["seq"]), str(gone[-1]["hash"]))
            kept = {r["change_id"] for r in self.rows}
            self.cache = {cid: v for cid, v in self.cache.items() if cid in kept}
        return len(gone)

    def close(self) -> None:
        """Nothing to release."""

    # -- reading -------------------------------------------------------------------------

    def events(self, change_id: str) -> list[ChangeEvent]:
        """A change's events in order, each checked against its hash and MAC.

        Raises:
            RecordTampered: an event's content, hash or MAC does not hold.
        """
        found = []
        for row in self._of(change_id):
            problem = self._event_problem(row)
            if problem:
                raise RecordTampered(change_id, f"event {row['seq']} ({row['type']}): {problem}")
            found.append(_event(row))
        return found

    def checked_events(self, change_id: str) -> tuple[list[ChangeEvent], list[str]]:
        """A change's events, and whether its record holds (as `SqlChangeLog`'s)."""
        with self._lock:
            try:
                events = self.events(change_id)
            except RecordTampered as exc:
                return [], [str(exc)]
            if not events:
                return [], []
            problems = [f"{change_id}: {p}" for e in events
                        if (p := self._link_problem(int(e.seq))) is not None]
            folded = fold(events)
            cached = self.cache.get(change_id)
            problem = self._cache_problem(change_id, cached, events[-1].seq)
            if problem is not None:
                problems.append(f"{change_id}: {problem}")
            elif cached is not None and ChangeRecord.model_validate_json(cached[0]) != folded:
                problems.append(f"{change_id}: its cached record does not match its events")
        return events, problems

    def check_change(self, change_id: str) -> list[str]:
        """Whether a change's record holds; the problems of `checked_events`."""
        return self.checked_events(change_id)[1]

    def record(self, change_id: str) -> ChangeRecord | None:
        """A change's record folded from its checked events; None if it has none."""
        events = self.events(change_id)
        return fold(events) if events else None

    def changes(self, category: str | None = None,
                emergency: bool | None = None) -> list[ChangeRecord]:
        """Current records, oldest first, each checked (see `SqlChangeLog.changes`)."""
        with self._lock:
            last = self._last_seqs()
            found = []
            for cid, seq in last.items():
                problem = self._cache_problem(cid, self.cache.get(cid), seq)
                if problem is not None:
                    raise RecordTampered(cid, problem)
                found.append(ChangeRecord.model_validate_json(self.cache[cid][0]))
        wanted = [r for r in found if r.state not in NOT_CHANGES
                  and (category is None or r.category == category)
                  and (emergency is None or r.emergency is emergency)]
        return sorted(wanted, key=lambda r: (r.opened_at, r.change_id))

    def active(self, start: datetime, end: datetime,
               hashes: bool = False) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
        """The records and events of the changes active in [start, end) (see SQL's)."""
        lo, hi = format_time(start), format_time(end)
        with self._lock:
            spans: dict[str, list[str]] = {}
            for row in self.rows:
                spans.setdefault(row["change_id"], []).append(row["at"])
            ids = {cid for cid, times in spans.items() if min(times) < hi and max(times) >= lo}
            last = self._last_seqs()
            records = []
            for cid in sorted(ids, key=lambda c: (min(spans[c]), c)):
                cached = self.cache.get(cid)
                if cached is not None and self._cache_problem(cid, cached, last[cid]) is None:
                    records.append((cid, cached[0]))
                else:
                    records.append((cid, fold(self.events(cid)).model_dump_json()))
            fields = EXPORT_FIELDS[:6] + (("hash",) if hashes else ())
            events = [tuple(r[f] for f in fields) for r in self.rows if r["change_id"] in ids]
        return records, events

    def unfinished_effects(self, change_id: str | None = None) -> list[ChangeEvent]:
        """Intents with no recorded outcome."""
        return open_effects(_event(r) for r in self.rows
                            if change_id is None or r["change_id"] == change_id)

    def events_between(self, start: datetime, end: datetime) -> Iterator[ChangeEvent]:
        """Events with start <= at < end, in chain order."""
        lo, hi = format_time(start), format_time(end)
        return iter([_event(r) for r in self.rows if lo <= r["at"] < hi])

    def deployment_events(self, since: datetime | None = None) -> list[ChangeEvent]:
        """The practices audit's facts (see `ports.ChangeLog`), each checked."""
        lo = format_time(since) if since is not None else ""
        with self._lock:
            rows = list(self.rows)
        ids = {r["change_id"] for r in rows if r["type"] in DEPLOYMENT_EVENTS and r["at"] >= lo}
        found = []
        for row in rows:
            if (row["type"] in DEPLOYMENT_EVENTS and row["at"] >= lo) or (
                    row["type"] in SUBMISSIONS and row["change_id"] in ids):
                problem = self._event_problem(row)
                if problem:
                    raise RecordTampered(row["change_id"],
                                         f"event {row['seq']} ({row['type']}): {problem}")
                found.append(_event(row))
        return found

    def last_succeeded(self, service: str, excluding: str) -> ChangeRecord | None:
        """The change of `service` whose verification passed last (see `ports.ChangeLog`)."""
        with self._lock:
            passed = [r["change_id"] for r in reversed(self.rows)
                      if r["type"] == EventType.VERIFICATION_PASSED
                      and r["change_id"] != excluding]
        for change_id in passed:
            record = self.record(change_id)
            if record is not None and succeeded_in(record, service):
                return record
        return None

    def head(self) -> tuple[int, str]:
        """The last sequence number and hash of the chain."""
        return self._head()

    def head_with_time(self) -> tuple[int, str, str]:
        """The chain's last sequence number, hash and time text ("" for an empty log)."""
        seq, hash_ = self._head()
        return seq, hash_, self.rows[-1]["at"] if self.rows else ""

    def count(self) -> int:
        """How many events the log holds."""
        return len(self.rows)

    def anchor_problem(self, seq: int, hash_: str) -> str | None:
        """Why the chain no longer holds event `seq` with hash `hash_`; None if it does."""
        stored = self._row(seq)
        return anchor_held(seq, hash_, self._start, self._head()[0],
                           None if stored is None else str(stored["hash"]))

    def chain_start(self) -> tuple[int, str]:
        """Where the kept chain starts: (0, genesis), or the last purge's checkpoint."""
        return self._start

    def export(self, upto: int) -> Iterator[dict[str, Any]]:
        """Every event up to `upto`, exactly as stored and hashed."""
        return iter([dict(r) for r in self.rows if r["seq"] <= upto])

    def event_time(self, seq: int) -> str:
        """The stored time text of event `seq`; "" if there is none."""
        row = self._row(seq)
        return str(row["at"]) if row else ""

    def verify(self, fold_changes: bool = False) -> Verification:
        """Check the whole log: each event's hash, MAC, link and time, then the cache."""
        with self._lock:
            start_seq, prev = self._start
            at, checked = "", 0
            for row in self.rows:
                problem = (self._event_problem(row)
                           or (None if row["seq"] == start_seq + checked + 1
                               else "events were removed or inserted before it")
                           or (None if row["prev_hash"] == prev
                               else "it does not follow the event before it")
                           or (None if row["at"] >= at else "it is dated before the event "
                                                               "before it"))
                if problem is not None:
                    return Verification(False, checked, start_seq + checked, prev,
                                        bad_seq=int(row["seq"]), problem=problem)
                prev, at, checked = row["hash"], row["at"], checked + 1
            mismatches = []
            last = self._last_seqs()
            for cid, seq in sorted(last.items()):
                problem = self._cache_problem(cid, self.cache.get(cid), seq)
                if problem is None and fold_changes and ChangeRecord.model_validate_json(
                        self.cache[cid][0]) != fold(_event(r) for r in self._of(cid)):
                    problem = "its cached record does not match its events"
                if problem is not None:
                    mismatches.append(f"{cid}: {problem}")
        return Verification(not mismatches, checked, start_seq + checked, prev,
                            mismatches=tuple(mismatches))

    # -- inside --------------------------------------------------------------------------

    def _head(self) -> tuple[int, str]:
        return (int(self.rows[-1]["seq"]), str(self.rows[-1]["hash"])) if self.rows \
            else self._start

    def _of(self, change_id: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["change_id"] == change_id]

    def _row(self, seq: int) -> dict[str, Any] | None:
        index = seq - self._start[0] - 1
        row = self.rows[index] if 0 <= index < len(self.rows) else None
        return row if row is not None and row["seq"] == seq else None

    def _last_seqs(self) -> dict[str, int]:
        return {r["change_id"]: int(r["seq"]) for r in self.rows}

    def _cached(self, change_id: str) -> ChangeRecord | None:
        cached = self.cache.get(change_id)
        if cached is None:
            return None
        last = max((int(r["seq"]) for r in self._of(change_id)), default=0)
        problem = self._cache_problem(change_id, cached, last)
        if problem is not None:
            raise RecordTampered(change_id, problem)
        return ChangeRecord.model_validate_json(cached[0])

    def _cache_problem(self, change_id: str, cached: tuple[str, str, str] | None,
                       last_seq: int) -> str | None:
        if cached is None:
            return "it has events but no cached record: the row was deleted"
        text, key_id, mac = cached
        try:
            good = self.keys.mac(record_digest(text), key_id) == mac
        except ChainKeyError:
            good = False
        if not good:
            return "its cached record's MAC does not hold: the cache was edited"
        if json.loads(text).get("last_seq") != last_seq:
            return f"its cached record is not as of its last event {last_seq}"
        return None

    def _event_problem(self, row: dict[str, Any]) -> str | None:
        digest = event_hash(int(row["seq"]), row["change_id"], row["type"], row["at"],
                            row["actor"], row["payload"], row["prev_hash"])
        if digest != row["hash"]:
            return "its content does not match its hash: the event was edited"
        try:
            good = self.keys.mac(row["hash"], row["key_id"]) == row["mac"]
        except ChainKeyError:
            good = False
        return None if good else "its MAC does not hold: it was forged without the key"

    def _link_problem(self, seq: int) -> str | None:
        row, before = self._row(seq), self._row(seq - 1)
        start_seq, start_hash = self._start
        prev = start_hash if seq - 1 == start_seq else (before["hash"] if before else None)
        if row is None or row["prev_hash"] != prev:
            return f"event {seq} does not follow the event before it in the chain"
        if before is not None and row["at"] < before["at"]:
            return f"event {seq} is dated before the event before it"
        return None


def _event(row: dict[str, Any]) -> ChangeEvent:
    return ChangeEvent(seq=row["seq"], change_id=row["change_id"], type=row["type"],
                       at=parse_time(row["at"]), actor=row["actor"],
                       payload=json.loads(row["payload"]), prev_hash=row["prev_hash"],
                       hash=row["hash"])
