"""What every lifecycle task shares: the task decorator, recording, and reading progress."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from domain.models import ChangeEvent, ChangeRequest
from integrations.factory import Adapters
from tasks.progress import log_event

SYSTEM = "changeflow"
"""The actor of decisions changeflow takes itself (gates, schedule, rollback)."""

P = ParamSpec("P")
R = TypeVar("R")


def step(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A lifecycle task: named, and never cached: the change log is its memory."""
    return task(name=name, cache_policy=NO_CACHE)


class ChangeStopped(Exception):
    """The policy stops the change here; the message says why, and it is recorded.

    A stop is an outcome, not a crash: the run ends in the state `outcome` (of type
    Failed) with the message, and `fixes` say what would let the change go on (shown in
    the run's `refused-<change>` artifact); by default the message itself.
    """

    outcome = "Stopped"

    def __init__(self, message: str, fixes: list[str] | None = None) -> None:
        super().__init__(message)
        self.fixes = fixes if fixes is not None else [message]


class ChangeRejected(ChangeStopped):
    """The change is rejected for good (declined, approvals missing, expired)."""

    outcome = "Rejected"


class _StopsWithoutTraceback(logging.Filter):
    """A task stopped by the policy is one line in the run's log, not a traceback.

    Prefect logs the exception a task raises with its traceback; a stop of the policy is
    an outcome (the flow ends it with `tasks.progress.stopped`), not a crash.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ChangeStopped):
            record.exc_info = record.exc_text = None
        return True


logging.getLogger("prefect.task_runs").addFilter(_StopsWithoutTraceback())


def record(a: Adapters, change_id: str, type_: str, actor: str = SYSTEM,
           **payload: Any) -> ChangeEvent:
    """Append one decision to the change log, now; its line goes to the run's log."""
    event = a.change_log.append(change_id, type_, actor, payload, a.now())
    log_event(event)
    return event


def events_of(a: Adapters, change: ChangeRequest | str, *types: str) -> list[ChangeEvent]:
    """The change's events, only of `types` when given."""
    change_id = change if isinstance(change, str) else change.id
    found = a.change_log.events(change_id)
    return [e for e in found if not types or e.type in types]


def last_of(a: Adapters, change: ChangeRequest | str, *types: str) -> ChangeEvent | None:
    """The change's latest event of `types`, or None."""
    found = events_of(a, change, *types)
    return found[-1] if found else None
