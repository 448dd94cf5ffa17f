"""Retention (policy section 7): events are kept three years, then may be purged.

Only a prefix of the chain is ever removed, and only what is older than the retention
period; a checkpoint records where the rest starts, so it still verifies from there. The
database's triggers refuse any other deletion.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from integrations.changelog_schema import (
    changes_table,
    checkpoints_table,
    events_table,
    format_time,
)

if TYPE_CHECKING:
    from integrations.changelog_sql import SqlChangeLog


class RetentionError(Exception):
    """A deletion the retention policy forbids."""


def check_retention(now: datetime, years: int, cutoff: datetime) -> None:
    """Refuse a purge up to `cutoff` inside the retention period of `years` before `now`.

    Raises:
        RetentionError: `cutoff` is inside the retention period.
    """
    try:
        limit = now.replace(year=now.year - years)
    except ValueError:  # 29 February
        limit = now.replace(year=now.year - years, day=28)
    if cutoff > limit:
        raise RetentionError(
            f"events younger than {years} years (before {limit:%Y-%m-%d}) "
            f"must be kept; refusing to purge up to {cutoff:%Y-%m-%d}")


def purge(log: SqlChangeLog, cutoff: datetime, now: datetime, actor: str) -> int:
    """Delete events older than `cutoff`, recording a checkpoint to verify from.

    Only a prefix of the chain is removed, up to the first event of a change that has
    an event at or after `cutoff`: what remains is still one chain, and every change in
    it is whole.

    Raises:
        RetentionError: `cutoff` is inside the retention period.
    """
    check_retention(now, log.retention_years, cutoff)
    cutoff_text = format_time(cutoff)
    with log._write() as conn:
        log._lock_head(conn)
        # A change that goes on past the cutoff is kept whole, so that its record
        # still folds from its events: the cut is before its first event.
        going_on = sa.select(events_table.c.change_id).where(
            events_table.c.at >= cutoff_text)
        first_kept = conn.execute(sa.select(sa.func.min(events_table.c.seq)).where(
            events_table.c.change_id.in_(going_on))).scalar()
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
