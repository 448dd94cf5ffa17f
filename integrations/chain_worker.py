"""Checks stretches of the change log's hash chain, here or in a worker process.

`SqlChangeLog.verify` splits the chain into ranges of sequence numbers and checks them on
every core: some in its own process, the others in `python -m integrations.chain_worker`
processes. This module imports only the standard library (and psycopg, for PostgreSQL),
so a worker starts in about 40 ms (psycopg's import adds about 100 ms).

A range check answers one question: does the range hold? The database builds each
event's canonical encoding (`integrations.changelog_schema.event_hash`), and the check
recomputes the hash and compares it with the stored one, checks the event's MAC, and
checks that its time is not before its predecessor's. Within the range, each event's
previous hash must be the hash of the event before it, and the range must hold exactly
`hi - lo + 1` events. The result says how the range begins (`first_prev`) and ends
(`last_hash`), so the caller can check the joins between ranges. Naming the first bad
event, and saying what is wrong with it, is left to the caller's one-pass diagnosis.

Worker protocol. On stdin: one JSON line with the connection (`{"dialect": "sqlite",
"database": <file: URI>}` or `{"dialect": "postgresql", "connect": {psycopg keyword
arguments}, "snapshot": <exported snapshot id>}`) and the MAC keys (`"mac_keys": {id:
hex}`), then one line `lo hi` per range, then
end of file. On stdout: one JSON line per range, in order; or one `{"error": ...}` line,
and exit status 1, when the worker cannot go on. The connection details and the MAC
keys travel only on stdin: never in argv, never in output.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sys
from collections.abc import Generator, Iterable
from typing import Any

BATCH = 5000
"""Rows fetched from the driver at a time."""

_SQLITE_BODY = ("printf('%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s', seq, change_id, type, at, "
                "actor, payload, prev_hash)")
# A row the fast check cannot vouch for gets a NULL body, so it fails here and the
# caller's diagnosis names it: a sequence number that is not an integer (4.5 is between 4
# and 5), or a previous hash that is not 64 characters (the body would end with the right
# hash after some junk). A text column holding a blob with the same bytes is hashed as
# those bytes, which the hash covers.
_SQLITE_WELL_FORMED = "typeof(seq) = 'integer' AND length(prev_hash) = 64"
QUERIES = {
    "sqlite": (f"SELECT CASE WHEN {_SQLITE_WELL_FORMED} THEN CAST({_SQLITE_BODY} AS BLOB) "
               "END, hash, key_id, mac, at FROM change_events WHERE seq BETWEEN ? AND ? "
               "ORDER BY seq"),
    # The column types fix the previous hash at 64 characters; the body comes back as
    # text in binary format, loaded as bytes (see `_cursor`).
    "postgresql": ("SELECT concat_ws(E'\\x1f', seq, change_id, type, at, actor, payload, "
                   "prev_hash), hash, key_id, mac, at FROM change_events "
                   "WHERE seq BETWEEN %s AND %s ORDER BY seq"),
}

_PREPARE = {
    # Read each range through the primary key, in order, whatever the planner's statistics
    # say: a freshly loaded table has none, and then the planner sorts each range, which
    # spills to disk. Parallel query would only compete with the workers for the cores.
    # Both settings last until the end of the transaction.
    "postgresql": ("SELECT set_config('enable_sort', 'off', true), "
                   "set_config('max_parallel_workers_per_gather', '0', true)"),
}

_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?", re.IGNORECASE)


def check_range(conn: Any, dialect: str, mac_keys: dict[str, bytes], lo: int,
                hi: int) -> dict[str, Any]:
    """Check events `lo`..`hi` through a DB-API connection (sqlite3 or psycopg).

    Each event's hash is recomputed, its MAC checked under the key its `key_id` names
    (`mac_keys`: MAC key by id), and its time must not be before its predecessor's.

    Returns:
        `lo`, `hi`; `checked`: events that held before the first failure; `first_prev`:
        the previous hash recorded by event `lo`; `last_hash`: the hash of the last event
        that held; `first_at`, `last_at`: the times of event `lo` and of the last event
        that held; `bad_seq` and `problem`: where and why the range does not hold, or None.
    """
    cursor = _cursor(conn, dialect)
    try:
        cursor.execute(QUERIES[dialect], (lo, hi))
        return _check_rows(cursor, mac_keys, lo, hi)
    finally:
        cursor.close()


def check_ranges(conn: Any, dialect: str, mac_keys: dict[str, bytes],
                 spans: Iterable[tuple[int, int]]) -> Generator[dict[str, Any], None, None]:
    """Check ranges one after the other, yielding `check_range`'s result for each."""
    for lo, hi in spans:
        yield check_range(conn, dialect, mac_keys, lo, hi)


def prepare(conn: Any, dialect: str) -> None:
    """Set up a transaction for range checks (PostgreSQL: plans that read in order)."""
    if dialect in _PREPARE:
        cursor = conn.cursor()
        cursor.execute(_PREPARE[dialect])
        cursor.close()


def _cursor(conn: Any, dialect: str) -> Any:
    """A cursor that returns each row as (body: bytes, hash: str)."""
    if dialect != "postgresql":
        return conn.cursor()
    from psycopg.types.string import ByteaBinaryLoader

    # Text in binary format is its bytes (UTF-8 here): load it as bytes, saving a decode
    # and an encode per event. A connection in another encoding only fails the fast
    # check; the diagnosis reads text.
    cursor = conn.cursor(binary=True)
    cursor.adapters.register_loader("text", ByteaBinaryLoader)
    return cursor


def _check_rows(cursor: Any, mac_keys: dict[str, bytes], lo: int, hi: int) -> dict[str, Any]:
    sha256, digest = hashlib.sha256, hmac.digest
    first_prev: str | None = None
    first_at: str | None = None
    prev = prev_at = ""
    checked = 0
    try:
        while batch := cursor.fetchmany(BATCH):
            if first_prev is None:
                first_prev = prev = batch[0][0][-64:].decode()
                first_at = prev_at = batch[0][4]
            for row in batch:  # the hot loop: keep it lean
                body, stored, key_id, mac, at = row
                if (body[-64:].decode() != prev or sha256(body).hexdigest() != stored
                        or digest(mac_keys[key_id], stored.encode(), "sha256").hex() != mac
                        or at < prev_at):
                    checked += batch.index(row)
                    return _result(lo, hi, checked, first_prev, prev, first_at, prev_at,
                                   "does not hold")
                prev, prev_at = stored, at
            checked += len(batch)
    except (TypeError, ValueError, AttributeError, KeyError):
        # a NULL body, a tail that is not text, an unknown key id
        return _result(lo, hi, checked, first_prev, prev, first_at, prev_at, "does not hold")
    if checked != hi - lo + 1:
        return _result(lo, hi, checked, first_prev, prev, first_at, prev_at,
                       f"holds {checked} events, not {hi - lo + 1}")
    return _result(lo, hi, checked, first_prev, prev, first_at, prev_at, None)


def _result(lo: int, hi: int, checked: int, first_prev: str | None, last_hash: str,
            first_at: str | None, last_at: str, problem: str | None) -> dict[str, Any]:
    return {"lo": lo, "hi": hi, "checked": checked, "first_prev": first_prev,
            "last_hash": last_hash if checked else None, "first_at": first_at,
            "last_at": last_at if checked else None,
            "bad_seq": None if problem is None else lo + checked, "problem": problem}


def connect(spec: dict[str, Any]) -> Any:
    """Open a read-only DB-API connection, inside the caller's snapshot when it has one."""
    if spec["dialect"] == "sqlite":
        import sqlite3

        conn = sqlite3.connect(spec["database"], uri=True, timeout=60,
                               isolation_level=None)
        conn.execute("BEGIN")  # one snapshot for every range this worker checks
        return conn
    import psycopg

    pg = psycopg.connect(**spec["connect"])
    pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    pg.read_only = True
    snapshot = spec.get("snapshot")
    if snapshot is not None:
        if not _SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"malformed snapshot id {snapshot!r}")
        pg.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    prepare(pg, "postgresql")
    return pg


def serve(stdin: Any, stdout: Any) -> int:
    """Read a connection and ranges from `stdin`, write one result per range to `stdout`."""
    spec: dict[str, Any] = {}
    try:
        spec = json.loads(stdin.readline())
        conn = connect(spec)
        mac_keys = {k: bytes.fromhex(v) for k, v in spec["mac_keys"].items()}
        spans = (_span(line) for line in stdin)
        for result in check_ranges(conn, spec["dialect"], mac_keys, spans):
            stdout.write(json.dumps(result) + "\n")
            stdout.flush()
        conn.close()
    except Exception as exc:  # report anything, then stop: the caller fails closed
        message = f"{type(exc).__name__}: {exc}".strip()
        password = str(spec.get("connect", {}).get("password") or "")
        if password:
            message = message.replace(password, "***")
        stdout.write(json.dumps({"error": message[:500]}) + "\n")
        stdout.flush()
        return 1
    return 0


def _span(line: str) -> tuple[int, int]:
    lo, hi = line.split()
    return int(lo), int(hi)


if __name__ == "__main__":
    sys.exit(serve(sys.stdin, sys.stdout))
