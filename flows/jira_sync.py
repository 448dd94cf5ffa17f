"""`jira-sync`: Jira is the change tickets' system of record; this keeps changeflow in step.

Scheduled every few minutes. It searches the project for tickets updated since its
watermark (in epoch milliseconds, less an overlap, every page followed), records what
changed, starts the lifecycle of tickets that became ready, cancels the runs of
tickets cancelled in Jira, and hands approvals given in Jira to the runs waiting on
them. A progress artifact shows the pages as they go; a summary artifact ends the run.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from integrations.factory import open_adapters, sync_state
from tasks.sync import WATERMARK, SyncCounts, fetch_page, jira_of, process_page

PROGRESS_EVERY_SECONDS = 2.0
"""How often the progress artifact is updated while pages are read (each is a call)."""


@flow(name="jira-sync", log_prints=True)
def jira_sync(full: bool = False) -> dict[str, Any]:
    """Read what changed in Jira since the last run and act on it.

    Args:
        full: ignore the watermark and read every ticket of the project again.
    """
    with open_adapters() as a:
        jira = jira_of(a)
        state = sync_state(a)
        mark = None if full else state.get([WATERMARK]).get(WATERMARK)
        overlap = jira.mapping.sync_overlap_seconds * 1000
        since = max(0, int(mark) - overlap) if mark is not None else 0
        jql = jira.updated_since_jql(since)
        requests_before = jira.requests
        progress: Any = create_progress_artifact(0.0, description="jira-sync: pages read")
        counts, pages, newest = SyncCounts(), 0, int(mark or 0)
        shown = time.monotonic()
        cursor: str | None = ""
        while cursor is not None:
            tickets, cursor, total = fetch_page(a, jql, cursor)
            process_page(a, state, tickets, counts)
            newest = max([newest] + [int(t.updated.timestamp() * 1000)
                                     for t in tickets if t.updated])
            pages += 1
            if cursor is None or time.monotonic() - shown >= PROGRESS_EVERY_SECONDS:
                done = counts.seen / total if total else pages / (pages + 1)
                update_progress_artifact(UUID(str(progress)),
                                         100.0 if cursor is None else min(99.0, done * 100))
                shown = time.monotonic()
        state.put({WATERMARK: newest})
        result = {"since_ms": since, "watermark_ms": newest, "pages": pages,
                  "seen": counts.seen, "changed": counts.changed, "started": counts.started,
                  "cancelled": counts.cancelled, "approvals": counts.approvals,
                  "refused": counts.refused, "requests": jira.requests - requests_before}
        create_markdown_artifact(key="jira-sync", markdown=summary(result),
                                 description="What jira-sync read and did")
        return result


def summary(result: dict[str, Any]) -> str:
    """The run's summary as markdown."""
    def listed(name: str) -> str:
        return ", ".join(result[name]) or "none"

    return "\n".join([
        "# jira-sync", "", "| what | value |", "|---|---|",
        f"| tickets read (updated since {result['since_ms']} ms) | {result['seen']} |",
        f"| pages | {result['pages']} |",
        f"| tickets changed (snapshot recorded) | {result['changed']} |",
        f"| lifecycles started | {listed('started')} |",
        f"| changes cancelled | {listed('cancelled')} |",
        f"| Jira approvals handed to runs | {listed('approvals')} |",
        f"| Jira approvals refused by the policy | {listed('refused')} |",
        f"| Jira requests | {result['requests']} |",
        f"| new watermark (ms) | {result['watermark_ms']} |"])
