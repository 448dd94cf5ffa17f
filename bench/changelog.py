"""Change-log benchmarks: appends per second, `verify` beside its floor, the pre-deploy check."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from domain.events import NewEvent
from domain.lifecycle import project
from integrations.changelog_schema import (
    SEP,
    canonical_payload,
    changes_table,
    event_hash,
    events_table,
    format_time,
    head_table,
    parse_time,
    record_digest,
)
from integrations.changelog_sql import SqlChangeLog
from integrations.changelog_verify import ParallelVerify
from tests.support.history import submission
from tests.support.keys import TEST_KEYS

START = datetime(2026, 1, 1, tzinfo=UTC)


def _note(change_id: str, i: int) -> NewEvent:
    return NewEvent(change_id, "note", "alice", {"text": f"benchmark note {i}"},
                    START + timedelta(seconds=i))


def appends(url: str, single: int = 1000, batched: int = 20000,
            batch_size: int = 500) -> dict[str, Any]:
    """Appends per second, one event per transaction and in batches."""
    log = SqlChangeLog(url, keys=TEST_KEYS)
    log.append("BENCH-1", "change_submitted", "alice", submission("BENCH-1"), START)
    t0 = time.perf_counter()
    for i in range(single):
        log.append("BENCH-1", "note", "alice", {"text": f"note {i}"}, START)
    single_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in range(0, batched, batch_size):
        log.append_many([_note("BENCH-1", b + i) for i in range(batch_size)])
    batched_s = time.perf_counter() - t0
    ok = log.verify().ok
    log.close()
    return {"single_per_s": round(single / single_s), "batched_per_s": round(batched / batched_s),
            "batch_size": batch_size, "single_events": single, "batched_events": batched,
            "chain_ok": ok}


def _rows(count: int, changes: int = 100_000) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A valid keyed chain of `count` events over `changes` changes, and their cached records.

    Each change starts with `change_submitted`; the rest are notes.
    """
    prev = "0" * 64
    template = submission("CHG-0")
    rows: list[dict[str, Any]] = []
    first: dict[str, dict[str, Any]] = {}  # change id -> its first row
    last: dict[str, dict[str, Any]] = {}
    for seq in range(1, count + 1):
        cid = f"CHG-{(seq - 1) % changes + 1}"
        at = format_time(START + timedelta(seconds=seq))
        if cid in first:
            typ, payload = "note", f'{{"text":"note {seq}"}}'
        else:
            typ, payload = "change_submitted", canonical_payload(
                {**template, "change": {**template["change"], "id": cid}})
        digest = event_hash(seq, cid, typ, at, "quinn", payload, prev)
        row: dict[str, Any] = {"seq": seq, "change_id": cid, "type": typ, "at": at,
                               "actor": "quinn",
                               "payload": payload, "prev_hash": prev, "hash": digest,
                               "key_id": TEST_KEYS.current.id, "mac": TEST_KEYS.mac(digest)}
        rows.append(row)
        first.setdefault(cid, row)
        last[cid] = row
        prev = digest
    records = []
    for cid, row in first.items():
        record = project(None, cid, row["type"], json.loads(row["payload"]),
                         parse_time(row["at"]), row["seq"])
        end = last[cid]
        if end is not row:
            record = project(record, cid, end["type"], json.loads(end["payload"]),
                             parse_time(end["at"]), end["seq"])
        text = record.model_dump_json()
        records.append({"change_id": cid, "category": "normal", "state": record.state,
                        "outcome": None, "opened_at": row["at"], "updated_at": end["at"],
                        "record": text, "key_id": TEST_KEYS.current.id,
                        "mac": TEST_KEYS.mac(record_digest(text))})
    return rows, records


def verify(url: str, count: int = 1_000_000) -> dict[str, Any]:
    """`verify` over `count` keyed events beside the floor, and the pre-deploy check.

    The floor is sha256 over each event's bytes and HMAC-SHA256 over its hash, in memory,
    in one process: what `verify` must compute at the least. `verify` runs as configured
    by default (on every core for a log this size), and once more in one process. The
    pre-deploy check is `check_change` (each event's hash and MAC, its neighbours, the
    cache against the fold) on changes of a log of `count` events over 100,000 changes.
    """
    log = SqlChangeLog(url, keys=TEST_KEYS)
    rows, records = _rows(count)
    with log.engine.begin() as conn:
        for i in range(0, count, 50_000):
            conn.execute(events_table.insert(), rows[i:i + 50_000])
        for i in range(0, len(records), 50_000):
            conn.execute(changes_table.insert(), records[i:i + 50_000])
        conn.execute(sa.update(head_table).values(seq=count, hash=rows[-1]["hash"],
                                                  at=rows[-1]["at"]))
    bodies = [SEP.join((str(r["seq"]), r["change_id"], r["type"], r["at"], r["actor"],
                        r["payload"], r["prev_hash"])).encode("utf-8") for r in rows]
    del rows, records
    mac_key = TEST_KEYS.current.mac_key
    t0 = time.perf_counter()
    for body in bodies:
        hmac.digest(mac_key, hashlib.sha256(body).hexdigest().encode(), "sha256").hex()
    floor_s = time.perf_counter() - t0
    megabytes = sum(len(b) for b in bodies) / 1e6
    del bodies
    t0 = time.perf_counter()
    result = log.verify()
    verify_s = time.perf_counter() - t0
    processes = log._processes(count)
    assert result.ok and result.checked == count, result
    sample = [f"CHG-{n}" for n in range(1, 100_001, 1000)]
    t0 = time.perf_counter()
    for cid in sample:
        assert log.check_change(cid) == [] and log.record(cid) is not None
    check_ms = (time.perf_counter() - t0) / len(sample) * 1000
    log.close()
    one = SqlChangeLog(url, keys=TEST_KEYS, parallel=ParallelVerify(processes=1))
    t0 = time.perf_counter()
    result = one.verify()
    one_process_s = time.perf_counter() - t0
    one.close()
    assert result.ok and result.checked == count, result
    return {"events": count, "megabytes": round(megabytes, 1), "verify_s": round(verify_s, 3),
            "processes": processes, "floor_s": round(floor_s, 3),
            "ratio": round(verify_s / floor_s, 2),
            "verify_one_process_s": round(one_process_s, 3),
            "one_process_ratio": round(one_process_s / floor_s, 2),
            "predeploy_check_ms": round(check_ms, 2),
            "events_per_change": count // 100_000}


def sqlite_url(folder: Path, name: str) -> str:
    """A fresh SQLite database file in `folder`."""
    path = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"
