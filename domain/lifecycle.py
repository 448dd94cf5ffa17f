"""The change's state machine and the per-change record projected from its events.

Every event appended to the change log passes through `next_state`: an event that may
not follow the change's current state is refused, so the log can only hold histories
that the policy allows. `project` folds an event into the change's current record.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.emergency import Obligation
from domain.events import (
    ChangeReclassified,
    ChangeSubmitted,
    Decided,
    EventType,
    IncidentOpened,
    ObligationOpened,
    ValidationFailed,
    check_payload,
)
from domain.events import EventType as E
from domain.models import Category, ChangeEvent, Decision, Purpose

TERMINAL_OUTCOMES = {
    "succeeded": "succeeded",
    "rolled_back": "rolled_back",
    "failed": "failed",
    "rejected": "rejected",
    "expired": "expired",
    "cancelled": "cancelled",
}
"""States that end a change, and the outcome each one means."""

_OPEN = ("submitted", "in_review", "approved", "testing", "blocked", "ready", "scheduled")

TRANSITIONS: dict[EventType, dict[str | None, str]] = {
    E.CHANGE_SUBMITTED: {None: "submitted", "draft": "submitted",
                         "needs_information": "submitted"},
    E.CHANGE_RECLASSIFIED: {"submitted": "submitted"},
    E.VALIDATION_FAILED: {None: "needs_information", "draft": "needs_information",
                          "needs_information": "needs_information"},
    # Asking is allowed at any point after submission (availability before deploying,
    # an emergency's obligations after closing); only a first review request moves it.
    E.APPROVAL_REQUESTED: {"submitted": "in_review", **{s: s for s in (
        "in_review", "approved", "testing", "blocked", "ready", "scheduled", "deploying",
        "deployed", "deploy_failed", "verify_failed", "rolling_back", *TERMINAL_OUTCOMES,
        "closed")}},
    E.APPROVAL_RECORDED: {"submitted": "in_review", "in_review": "in_review",
                          "testing": "testing"},
    E.APPROVAL_GRANTED: {"submitted": "approved", "in_review": "approved"},
    E.CHANGE_REJECTED: {"submitted": "rejected", "in_review": "rejected",
                        "testing": "rejected"},
    E.APPROVAL_EXPIRED: {"in_review": "expired", "testing": "expired"},
    E.STAGING_STARTED: {"approved": "testing"},
    E.STAGING_PASSED: {"testing": "testing"},
    E.STAGING_FAILED: {"testing": "failed"},
    E.GATES_PASSED: {"approved": "ready", "testing": "ready", "blocked": "ready"},
    E.GATES_BLOCKED: {"approved": "blocked", "testing": "blocked", "blocked": "blocked"},
    E.DEPLOYMENT_SCHEDULED: {"ready": "scheduled", "scheduled": "scheduled"},
    E.DEPLOYMENT_STARTED: {"ready": "deploying", "scheduled": "deploying"},
    E.DEPLOYMENT_SUCCEEDED: {"deploying": "deployed"},
    E.DEPLOYMENT_FAILED: {"deploying": "deploy_failed"},
    E.VERIFICATION_PASSED: {"deployed": "succeeded"},
    E.VERIFICATION_FAILED: {"deployed": "verify_failed"},
    E.ROLLBACK_STARTED: {"deploying": "rolling_back", "deploy_failed": "rolling_back",
                         "deployed": "rolling_back", "verify_failed": "rolling_back"},
    E.ROLLBACK_SUCCEEDED: {"rolling_back": "rolled_back"},
    E.ROLLBACK_FAILED: {"rolling_back": "failed"},
    E.CHANGE_CANCELLED: {s: "cancelled"
                         for s in (None, "draft", "needs_information", *_OPEN)},
    E.CHANGE_CLOSED: {s: "closed" for s in TERMINAL_OUTCOMES},
    # Not changes: a prohibited-practice finding is a record of its own (policy section
    # 6), and the audit's runs are one stream, so both are kept apart from changes.
    E.PRACTICE_FINDING: {None: "finding"},
    E.PRACTICES_AUDITED: {None: "audit", "audit": "audit"},
    # The record of integrity alarms: a change whose record did not hold, named in each.
    E.INTEGRITY_ALARM: {None: "alarm", "alarm": "alarm"},
}
"""event type -> {state it may follow: state it leads to}. None is a change not yet seen."""

NEUTRAL_EVENTS = frozenset(EventType) - frozenset(TRANSITIONS)
"""Evidence that may be recorded at any point of a change that exists; state unchanged:
every event type without transitions."""

EVENT_TYPES = frozenset(EventType)

NOT_CHANGES = frozenset({"finding", "audit", "alarm"})
"""Record states that are not changes: listings and reports of changes leave them out."""


class IllegalTransition(ValueError):
    """An event that may not follow the change's current state."""


def next_state(state: str | None, event_type: str) -> str | None:
    """The state after `event_type`, or raise `IllegalTransition`.

    Args:
        state: the change's current state, None if it has no events yet.
        event_type: the event about to be recorded.
    """
    name = str(event_type)
    if name not in EVENT_TYPES:
        raise IllegalTransition(f"unknown event type {name!r}")
    kind = EventType(name)
    if kind in NEUTRAL_EVENTS:
        if state is None and kind is EventType.TICKET_SNAPSHOT:
            return "draft"  # a ticket seen in the ticket system, not submitted yet
        if state is None:
            raise IllegalTransition(f"{name!r} needs an existing change")
        return state
    allowed = TRANSITIONS[kind]
    if state not in allowed:
        may = ", ".join(sorted(str(s) for s in allowed))
        raise IllegalTransition(
            f"{name!r} cannot follow state {state!r} (it may follow: {may})")
    return allowed[state]


class ObligationRecord(Obligation):
    """An obligation an emergency change owes, as the change log holds it now.

    Attributes:
        owners: who owes it (roster ids), told by reminders.
        opened_at: when it was opened.
        closed_at: when its owner fulfilled it (`outcome` "done"), None while open.
        closed_by: who fulfilled or refused it.
        outcome: "done", or "refused" when its owner declined (a disputed verbal
            approval, a refused sign-off); a refused obligation stays open.
    """

    owners: list[str]
    opened_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    outcome: str | None = None

    @property
    def done(self) -> bool:
        """True once its owner fulfilled it."""
        return self.outcome == "done"


class ChangeRecord(BaseModel):
    """A change as the change log knows it now (policy section 7's record)."""

    model_config = ConfigDict(frozen=True)

    change_id: str
    state: str
    outcome: str | None = None
    category: Category | None = None
    summary: str = ""
    description: str = ""
    service: str | None = None
    version: str | None = None
    author: str | None = None
    approvers: list[str] = []
    deployed_at: datetime | None = None
    incidents: list[str] = []
    obligations: dict[str, ObligationRecord] = {}
    reclassified_from: Category | None = None
    opened_at: datetime
    updated_at: datetime
    last_seq: int

    @property
    def emergency(self) -> bool:
        """True for an emergency change (tracked separately, policy section 5)."""
        return self.category is Category.EMERGENCY


_SUBMITTED_FIELDS = ("summary", "description", "service", "version", "author")


def _obligations(current: dict[str, Any], said: ObligationOpened | Decided,
                 at: datetime) -> dict[str, Any]:
    """The change's obligations after an obligation was opened or answered."""
    found = dict(current)
    if isinstance(said, ObligationOpened):
        found[said.obligation] = {"kind": said.obligation, "due": said.due,
                                  "owner_role": said.owner_role, "owners": said.owners,
                                  "opened_at": at}
    elif said.purpose in found:  # an answer is a decision whose purpose is its name
        done = said.decision is Decision.APPROVE
        found[said.purpose] = {**dict(found[said.purpose]), "closed_at": at if done else None,
                               "closed_by": said.person_id,
                               "outcome": "done" if done else "refused"}
    return found


SIGN_OFF_PURPOSE = Purpose.SIGN_OFF
"""The one decision recorded while a change is in testing: QA's sign-off (section 2)."""


def _approval_in_its_step(state: str | None, decided: Decided) -> None:
    """A review decision belongs to review; the staging sign-off to testing."""
    sign_off = decided.purpose == SIGN_OFF_PURPOSE
    if state == "testing" and not sign_off:
        raise IllegalTransition(f"a {decided.purpose or 'review'} decision cannot be "
                                "recorded once the change is in testing: review is over")
    if state != "testing" and sign_off:
        raise IllegalTransition(f"a staging sign-off cannot be recorded in state {state!r}")


_READ = frozenset({EventType.CHANGE_SUBMITTED, EventType.VALIDATION_FAILED,
                   EventType.APPROVAL_RECORDED, EventType.INCIDENT_OPENED,
                   EventType.CHANGE_RECLASSIFIED, EventType.OBLIGATION_OPENED,
                   EventType.OBLIGATION_RESPONDED})
"""The event types whose payload the record is made of."""


def project(record: ChangeRecord | None, change_id: str, event_type: str,
            payload: dict[str, Any], at: datetime, seq: int) -> ChangeRecord:
    """Fold one event into the change's record; raises `IllegalTransition` if refused.

    Raises:
        IllegalTransition: the event may not follow the change's state.
        domain.events.PayloadError: its payload is not its type's.
    """
    state = next_state(record.state if record else None, event_type)
    assert state is not None
    said = check_payload(event_type, payload) if event_type in _READ else None
    if isinstance(said, Decided) and event_type == EventType.APPROVAL_RECORDED:
        _approval_in_its_step(record.state if record else None, said)
    base: dict[str, Any] = (record.model_dump() if record else
                            {"change_id": change_id, "opened_at": at})
    base.update(state=state, updated_at=at, last_seq=seq)
    if isinstance(said, ChangeSubmitted | ValidationFailed):
        base.update({k: getattr(said, k, None) for k in _SUBMITTED_FIELDS
                     if isinstance(getattr(said, k, None), str)})
        if said.category in set(Category):
            base["category"] = Category(said.category)
    elif isinstance(said, Decided) and event_type == EventType.APPROVAL_RECORDED:
        name = f"{said.role}:{said.person_id}"
        if said.decision is Decision.APPROVE and name not in base["approvers"]:
            base["approvers"] = [*base["approvers"], name]
    elif event_type in (EventType.DEPLOYMENT_SUCCEEDED, EventType.DEPLOYMENT_FAILED):
        base["deployed_at"] = at
    elif isinstance(said, IncidentOpened):
        base["incidents"] = [*base["incidents"], said.incident_id]
    elif isinstance(said, ChangeReclassified):
        base.update(reclassified_from=base["category"], category=said.to)
    elif isinstance(said, ObligationOpened | Decided):
        base["obligations"] = _obligations(base["obligations"], said, at)
    if state in TERMINAL_OUTCOMES:
        base["outcome"] = TERMINAL_OUTCOMES[state]
    return ChangeRecord.model_validate(base)


def fold(events: Iterable[ChangeEvent]) -> ChangeRecord:
    """A change's record from its events, in order: what the record decides from.

    Raises:
        IllegalTransition: the events are not a history the policy allows.
        ValueError: there are no events.
    """
    record: ChangeRecord | None = None
    for e in events:
        record = project(record, e.change_id, e.type, e.payload, e.at, e.seq)
    if record is None:
        raise ValueError("a change with no events has no record")
    return record
