"""The change log as pandas frames, for reports: no per-row objects.

A quarter's report needs every event of every change that reached production in the
quarter (or, never deployed, was submitted in it), including what happened to it
before and after the quarter. The changes are found by their events (the first before
the quarter ends, the last after it starts), never by an editable column of the cache,
and each cached record is checked (`SqlChangeLog.active`).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from integrations.ports import ChangeLog

EVENT_COLUMNS = ["seq", "change_id", "type", "at", "actor", "payload"]


def change_frames(log: ChangeLog, start: datetime, end: datetime,
                  hashes: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The records and the events of the changes active in [start, end), read at once.

    Records: change_id, record (its JSON text), oldest first. Events, in chain order: seq,
    change_id, type, at (UTC, datetime64), actor, payload (JSON text), and with `hashes`
    the event's hash.
    """
    records, events = log.active(start, end, hashes=hashes)
    frame = pd.DataFrame(events, columns=EVENT_COLUMNS + (["hash"] if hashes else []))
    frame["at"] = pd.to_datetime(frame["at"], format="%Y-%m-%dT%H:%M:%S.%fZ", utc=True)
    return pd.DataFrame(records, columns=["change_id", "record"]), frame
