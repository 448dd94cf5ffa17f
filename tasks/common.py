"""What every lifecycle task shares: the task decorator, recording, and reading progress."""

from __future__ import annotations

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
    """The policy stops the change here; the message says why, and it is recorded."""


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
