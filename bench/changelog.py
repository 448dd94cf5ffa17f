"""Change-log benchmarks: appends per second, and `verify` beside plain sha256."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from integrations.changelog_schema import SEP, event_hash, events_table, format_time, head_table
from integrations.changelog_sql import NewEvent, ParallelVerify, SqlChangeLog
from tests.support.keys import TEST_KEYS

START = datetime(2026, 1, 1, tzinfo=UTC)


def _note(change_id: str, i: int) -> NewEvent:
    return NewEvent(change_id, "note", "alice", {"i": i, "text": "benchmark note"},
                    START + timedelta(seconds=i))


def appends(url: str, single: int = 1000, batched: int = 20000,
            batch_size: int = 500) -> dict[str, Any]:
    """Appends per second, one event per transaction and in batches."""
    log = SqlChangeLog(url, keys=TEST_KEYS)
    log.append("BENCH-1", "change_submitted", "alice", {"category": "normal"}, START)
    t0 = time.perf_counter()
    for i in range(single):
        log.append("BENCH-1", "note", "alice", {"i": i}, START)
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


def _rows(count: int, changes: int = 100_000) -> list[dict[str, Any]]:
    """A valid chain of `count` events spread over `changes` changes, built in memory."""
    prev = "0" * 64
    rows = []
    for seq in range(1, count + 1):
        cid = f"CHG-{seq % changes + 1}"
        at = format_time(START + timedelta(seconds=seq))
        payload = f'{{"i":{seq},"role":"qa","person_id":"quinn","decision":"approve"}}'
        digest = event_hash(seq, cid, "note", at, "quinn", payload, prev)
        rows.append({"seq": seq, "change_id": cid, "type": "note", "at": at, "actor": "quinn",
                     "payload": payload, "prev_hash": prev, "hash": digest})
        prev = digest
    return rows


def verify(url: str, count: int = 1_000_000) -> dict[str, Any]:
    """`verify` over `count` events beside plain sha256 over the same bytes, same run.

    `verify` runs as configured by default (on every core for a log this size), and once
    more in one process.
    """
    log = SqlChangeLog(url, keys=TEST_KEYS)
    rows = _rows(count)
    with log.engine.begin() as conn:
        for i in range(0, count, 50_000):
            conn.execute(events_table.insert(), rows[i:i + 50_000])
        conn.execute(sa.update(head_table).values(seq=count, hash=rows[-1]["hash"]))
    bodies = [SEP.join((str(r["seq"]), r["change_id"], r["type"], r["at"], r["actor"],
                        r["payload"], r["prev_hash"])).encode("utf-8") for r in rows]
    del rows
    t0 = time.perf_counter()
    for body in bodies:
        hashlib.sha256(body).hexdigest()
    floor_s = time.perf_counter() - t0
    megabytes = sum(len(b) for b in bodies) / 1e6
    del bodies
    t0 = time.perf_counter()
    result = log.verify()
    verify_s = time.perf_counter() - t0
    processes = log._processes(count)
    log.close()
    assert result.ok and result.checked == count, result
    one = SqlChangeLog(url, keys=TEST_KEYS, parallel=ParallelVerify(processes=1))
    t0 = time.perf_counter()
    result = one.verify()
    one_process_s = time.perf_counter() - t0
    one.close()
    assert result.ok and result.checked == count, result
    return {"events": count, "megabytes": round(megabytes, 1), "verify_s": round(verify_s, 3),
            "processes": processes, "plain_sha256_s": round(floor_s, 3),
            "ratio": round(verify_s / floor_s, 2),
            "verify_one_process_s": round(one_process_s, 3),
            "one_process_ratio": round(one_process_s / floor_s, 2)}


def sqlite_url(folder: Path, name: str) -> str:
    """A fresh SQLite database file in `folder`."""
    path = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"
