"""The record decides: a change goes on only as far as its verified record clears it.

Before each production side effect the change's record is checked (its events' hashes,
MACs, places in the chain and times; its cached record against their fold) and its
approvals and gates are judged again by `domain.clearance`. A record that does not hold
or does not clear stops the run, is recorded as an integrity alarm naming the change,
and is sent to the CISO at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from domain.clearance import Action, record_clearance
from domain.events import EventType
from domain.models import ChangeEvent, ChangeRequest, Notice
from integrations.changelog_sql import ChangeBusy, RecordTampered
from integrations.factory import Adapters
from tasks.common import SYSTEM, ChangeStopped, record, step
from tasks.notices import notify

ALARMS = "changeflow-integrity"
"""The record that integrity alarms are appended to (not a change: a change whose own
record does not hold cannot be trusted to carry its alarm)."""

ALARMED_ROLE = "ciso"


class IntegrityAlarm(ChangeStopped):
    """A change's record does not hold or does not clear it; recorded and sent to the CISO."""


def raise_alarm(a: Adapters, change_id: str, action: str, problems: list[str]) -> IntegrityAlarm:
    """Record an integrity alarm and tell the CISO; returns what to raise."""
    record(a, ALARMS, EventType.INTEGRITY_ALARM, SYSTEM, change=change_id, action=action,
           problems=problems)
    notify(a, [p.id for p in a.config.roster.holding(ALARMED_ROLE)], Notice(
        to="", kind="integrity-alarm", change_id=change_id,
        subject=f"Integrity alarm: {change_id} stopped before it could {action}",
        body="changeflow stopped the change: its record does not hold.\n- "
             + "\n- ".join(problems)
             + "\nCheck the whole log with `changeflow log verify --fold`."), stream=ALARMS)
    return IntegrityAlarm(f"{change_id}: stopped before it could {action}: its record does "
                          f"not hold: {'; '.join(problems)}")


def check_intact(a: Adapters, change_id: str, action: str) -> list[ChangeEvent]:
    """The change's verified events; stops with an alarm if its record does not hold.

    Raises:
        IntegrityAlarm: it does not (see module doc); recorded and sent.
    """
    events, problems = a.change_log.checked_events(change_id)
    if problems:
        raise raise_alarm(a, change_id, action, problems)
    return events


@step("clear-for-production")
def clear_for(a: Adapters, change: ChangeRequest, action: Action) -> None:
    """The verified record clears `action`, or the run stops with an integrity alarm.

    Raises:
        IntegrityAlarm: the record does not hold, or does not clear the action.
    """
    events = check_intact(a, change.id, action.value)
    problems = record_clearance(action, events, change, a.config.policy, a.config.roster)
    if problems:
        raise raise_alarm(a, change.id, action.value, problems)


@contextmanager
def one_run(a: Adapters, change_id: str) -> Iterator[None]:
    """Hold the change's lock for the run; a second run of the change stops at once.

    Raises:
        ChangeStopped: another run holds the change; this one did nothing.
    """
    try:
        with a.change_log.change_lock(change_id):
            yield
    except ChangeBusy:
        raise ChangeStopped(f"{change_id}: another run is taking this change through its "
                            "steps; this run stops without doing anything (start it again "
                            "once that run has finished)") from None
    except RecordTampered as exc:
        raise raise_alarm(a, exc.change_id, "go on", [str(exc)]) from None
