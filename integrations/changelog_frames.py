"""The change log as pandas frames, for reports: one query each, no per-row objects.

A quarter's report needs every event of every change that reached production in the
quarter (or, never deployed, was submitted in it), including what happened to it
before and after the quarter. The changes are found through the `changes` projection
(opened before the quarter ends, last updated after it starts), and their events read
in one join.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from integrations.changelog_schema import changes_table, events_table, format_time
from integrations.changelog_sql import SqlChangeLog

EVENT_COLUMNS = ["seq", "change_id", "type", "at", "actor", "payload"]


def _touching(start: datetime, end: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(changes_table.c.opened_at < format_time(end),
                   changes_table.c.updated_at >= format_time(start))


def change_records(log: SqlChangeLog, start: datetime, end: datetime) -> pd.DataFrame:
    """Records (the `record` JSON, as text) of changes active in [start, end)."""
    query = sa.select(changes_table.c.change_id, changes_table.c.record).where(
        _touching(start, end)).order_by(changes_table.c.opened_at, changes_table.c.change_id)
    with log.engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=["change_id", "record"])


def change_events(log: SqlChangeLog, start: datetime, end: datetime,
                  hashes: bool = False) -> pd.DataFrame:
    """Every event of the changes active in [start, end), in chain order.

    Columns: seq, change_id, type, at (UTC, datetime64), actor, payload (JSON text), and
    with `hashes` the event's hash.
    """
    e = events_table
    columns = [e.c.seq, e.c.change_id, e.c.type, e.c.at, e.c.actor, e.c.payload]
    columns += [e.c.hash] if hashes else []
    query = sa.select(*columns).join(
        changes_table, changes_table.c.change_id == e.c.change_id).where(
        _touching(start, end)).order_by(e.c.seq)
    with log.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).all(),
                             columns=EVENT_COLUMNS + (["hash"] if hashes else []))
    frame["at"] = pd.to_datetime(frame["at"], format="%Y-%m-%dT%H:%M:%S.%fZ", utc=True)
    return frame
