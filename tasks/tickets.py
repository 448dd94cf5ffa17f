"""Writing to the change ticket, with the one retry layer for the ticket system.

Every call to the ticket system that can fail for a moment (429, 5xx, a connection
error, a timeout) is a task of its own, retried here and nowhere else: the `jira`
client's own retries are off. A retry waits what the system asked (`Retry-After`, in
seconds or as an HTTP date) or an exponential backoff, whichever is longer. Refusals
(400: a bad field, a transition not open) are not retried; they surface with the
system's own message. Each write is safe to repeat: a comment is not posted twice, a
ticket already in its status is not moved, an incident and a link are looked up first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import task_run

from integrations.factory import Adapters
from integrations.ports import CodeHostUnavailable, NoticeUnavailable, TicketSystemUnavailable

RETRIES = 5
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Waits before retries 1..5 when the ticket system gave no `Retry-After`."""

P = ParamSpec("P")
R = TypeVar("R")


TRANSIENT = (TicketSystemUnavailable, CodeHostUnavailable, NoticeUnavailable)
"""Failures of a remote system that are worth retrying (each carries `retry_after`)."""


def retry_transient(task_: Task[..., Any], run: TaskRun, state: State[Any]) -> bool:
    """Retry only when the remote system was unavailable; wait as it asked first."""
    exc = state.result(raise_on_failure=False)
    if not isinstance(exc, TRANSIENT):
        return False
    backoff = BACKOFF_SECONDS[min(max(run.run_count - 1, 0), len(BACKOFF_SECONDS) - 1)]
    time.sleep(max(exc.retry_after or 0.0, backoff))
    return True


def ticket_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task that talks to a remote system (tickets, code host, notices), retried."""
    return task(name=name, cache_policy=NO_CACHE, retries=RETRIES, retry_delay_seconds=0,
                retry_condition_fn=retry_transient)


@ticket_task("comment-on-ticket")
def comment_on(a: Adapters, key: str, body: str) -> None:
    """Add a comment; a retry first checks the earlier attempt did not land after all."""
    if (task_run.run_count or 1) > 1 and body in a.tickets.comments(key):
        return
    a.tickets.add_comment(key, body)


@ticket_task("comment-on-ticket-once")
def comment_once(a: Adapters, key: str, body: str) -> None:
    """Add a comment unless the ticket already has it (a step finished by a later run)."""
    if body not in a.tickets.comments(key):
        a.tickets.add_comment(key, body)


@ticket_task("move-ticket")
def move_ticket(a: Adapters, key: str, status: str) -> None:
    """Move the ticket to changeflow's `status` (the adapter maps and skips if there)."""
    a.tickets.transition(key, status)


def tell(a: Adapters, key: str, body: str, status: str | None = None) -> None:
    """Comment on the ticket, then move it to `status` if given."""
    comment_on(a, key, body)
    if status is not None:
        move_ticket(a, key, status)


@ticket_task("link-evidence")
def link_evidence(a: Adapters, key: str, links: list[tuple[str, str]]) -> None:
    """Attach evidence links (URL, title) to the ticket, each once."""
    for url, title in links:
        a.tickets.add_link(key, url, title)


@ticket_task("file-incident")
def file_incident(a: Adapters, change_key: str, incident_id: str, summary: str,
                  priority: int) -> str:
    """The ticket system's incident for a rollback, linked to the change; never two."""
    return a.tickets.open_incident(change_key, incident_id, summary, priority)
