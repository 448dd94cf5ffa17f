"""The syncs' memory between runs, in changeflow's own database (`sync_state` table).

A watermark (how far a sync has read) and, per ticket, what was last seen of it (a
digest of its fields, its status, the readiness already acted on), so that a ticket
that has not changed costs nothing but its row in a search page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from integrations.changelog_schema import format_time, sync_state_table

CHUNK = 500
"""Names per `IN (...)` query: well under SQLite's variable limit."""


class SyncState:
    """Named JSON values, read in bulk and written with upserts."""

    def __init__(self, engine: Engine) -> None:
        """Use the change log's engine (its schema creates the table)."""
        self.engine = engine

    def get(self, names: Iterable[str]) -> dict[str, Any]:
        """The values stored under `names` (missing names are absent)."""
        wanted = list(dict.fromkeys(names))
        found: dict[str, Any] = {}
        table = sync_state_table
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), CHUNK):
                rows = conn.execute(sa.select(table.c.name, table.c.value).where(
                    table.c.name.in_(wanted[i:i + CHUNK])))
                found.update({name: json.loads(value) for name, value in rows})
        return found

    def put(self, values: Mapping[str, Any]) -> None:
        """Store `values` in one transaction, replacing what was there."""
        if not values:
            return
        now = format_time(datetime.now(UTC))
        rows = [{"name": k, "value": json.dumps(v, sort_keys=True), "updated_at": now}
                for k, v in values.items()]
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statement = insert(sync_state_table)
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at})
        with self.engine.begin() as conn:
            conn.execute(statement, rows)
