"""Every event the change log holds: its name in one `StrEnum`, its payload as a model.

An event type is the past tense of what happened. `domain.lifecycle` says which of them
move a change's state and from where; the rest are evidence recorded along the way. Each
type's payload is a pydantic model (`PAYLOADS`): the change log refuses a payload that is
not its type's (`check_payload`), and code reads a recorded payload through its model
(`payload_of`), never by a string key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.models import (
    Category,
    ChangeEvent,
    ChangeRequest,
    CheckResult,
    Decision,
    GateResult,
)


class EventType(StrEnum):
    """The type of a change-log event."""

    CHANGE_SUBMITTED = "change_submitted"
    CHANGE_RECLASSIFIED = "change_reclassified"
    VALIDATION_FAILED = "validation_failed"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_RECORDED = "approval_recorded"
    APPROVAL_GRANTED = "approval_granted"
    CHANGE_REJECTED = "change_rejected"
    APPROVAL_EXPIRED = "approval_expired"
    STAGING_STARTED = "staging_started"
    STAGING_PASSED = "staging_passed"
    STAGING_FAILED = "staging_failed"
    GATES_PASSED = "gates_passed"
    GATES_BLOCKED = "gates_blocked"
    DEPLOYMENT_SCHEDULED = "deployment_scheduled"
    DEPLOYMENT_STARTED = "deployment_started"
    DEPLOYMENT_SUCCEEDED = "deployment_succeeded"
    DEPLOYMENT_FAILED = "deployment_failed"
    VERIFICATION_PASSED = "verification_passed"
    VERIFICATION_FAILED = "verification_failed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_SUCCEEDED = "rollback_succeeded"
    ROLLBACK_FAILED = "rollback_failed"
    CHANGE_CANCELLED = "change_cancelled"
    CHANGE_CLOSED = "change_closed"
    PRACTICE_FINDING = "practice_finding"
    PRACTICES_AUDITED = "practices_audited"
    INTEGRITY_ALARM = "integrity_alarm"
    APPROVAL_ATTEMPT_FAILED = "approval_attempt_failed"
    APPROVAL_CODES_REISSUED = "approval_codes_reissued"
    AVAILABILITY_CONFIRMED = "availability_confirmed"
    CODE_HOST_READ = "code_host_read"
    EFFECT_FINISHED = "effect_finished"
    EFFECT_STARTED = "effect_started"
    ESCALATED = "escalated"
    GATE_BYPASSED = "gate_bypassed"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_REVIEWED = "incident_reviewed"
    NOTE = "note"
    NOTIFICATION_SENT = "notification_sent"
    NOTICE_DELIVERED = "notice_delivered"
    NOTICE_FAILED = "notice_failed"
    OBLIGATION_OPENED = "obligation_opened"
    OBLIGATION_RESPONDED = "obligation_responded"
    PROCEDURE_CHECKED = "procedure_checked"
    REMINDER_SENT = "reminder_sent"
    RUN_STARTED = "run_started"
    SAST_WAIVER_APPLIED = "sast_waiver_applied"
    TICKET_SNAPSHOT = "ticket_snapshot"
    TICKET_UPDATED = "ticket_updated"


class Payload(BaseModel):
    """What an event says, beyond who and when. Every field is named; nothing else is kept.

    `clock_behind` is added by the change log itself: the clock's time when it was behind
    the chain's last event (the event carries its predecessor's time instead).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    clock_behind: str | None = None


class ChangeSubmitted(Payload):
    """A ticket accepted as a change: the change as it will be approved and deployed."""

    summary: str
    description: str
    category: str
    service: str
    version: str
    author: str
    watchers: list[str] = []
    change: ChangeRequest


class ChangeReclassified(Payload):
    """A change handled as another category (a standard change that does not fit)."""

    from_: str = Field(alias="from")
    to: Category
    reasons: list[str]


class ValidationFailed(Payload):
    """A ticket sent back: every problem, and what of the ticket could be read."""

    problems: list[str]
    summary: str | None = None
    category: str | None = None
    service: str | None = None
    version: str | None = None
    author: str | None = None


class ApprovalRequested(Payload):
    """A decision asked of a role's people: codes' digests, who may answer, until when.

    `digests` are keyed (`domain.otp`) under the approval-code key of chain key `key_id`.
    `unreached` are the eligible people no channel could deliver a code to: they hold no
    code, so they cannot answer.
    """

    role: str
    purpose: str
    run_id: str
    salt: str
    digests: dict[str, str]
    eligible: list[str]
    expires_at: str
    key_id: str = ""
    approvers: list[str] = []
    channel: str | None = None
    where: str | None = None
    unreached: list[str] = []


class ApprovalCodesReissued(Payload):
    """New codes for an open request; the codes they replace no longer work.

    `digests` replaces the named people's digests (under `key_id`). `withdrawn` is True
    when every code of the request was withdrawn (too many wrong codes), else the one
    person's code was spent by an answer refused for another reason.
    """

    role: str
    purpose: str
    run_id: str
    digests: dict[str, str]
    key_id: str
    reason: str
    withdrawn: bool = False
    unreached: list[str] = []


class Decided(Payload):
    """A person's decision (an approval, an availability, an obligation's answer)."""

    role: str
    purpose: str
    person_id: str
    decision: Decision
    channel: str = "unknown"
    comment: str = ""
    run_id: str | None = None
    requested_role: str | None = None
    fallback_reason: str | None = None
    recorded_by: str | None = None
    via: str | None = None
    given_at: str | None = None
    decided_at: str | None = None
    ref: str | None = None
    account: str | None = None


class ApprovalGranted(Payload):
    """Every required approval is in: who gave each role's."""

    approvers: dict[str, str] = {}


class ChangeRejected(Payload):
    """The change stopped in a step, with why."""

    step: str
    reasons: list[str]


class ApprovalExpired(Payload):
    """A decision not given in time: a rejection."""

    role: str
    purpose: str
    expired_at: str


AttemptKind = Literal["wrong_code", "expired", "not_sent", "refused", "invalid"]
"""Why an answer was refused: a code that is wrong (a guess, a replay, someone else's),
expired or was never sent to the person; a right code in an answer the rules refuse
(the code is then spent); or an answer that does not fit the form."""


class ApprovalAttemptFailed(Payload):
    """An answer refused (wrong, expired or another's code; not eligible): not a decision."""

    role: str
    purpose: str
    run_id: str
    claimed: str
    reason: str
    kind: AttemptKind = "refused"
    ref: str | None = None
    account: str | None = None


class StagingStarted(Payload):
    """The version deployed to staging for its tests."""

    version: str


class StagingResults(Payload):
    """Each staging step's result (deploy, tests, checks)."""

    results: list[dict[str, Any]]


class GatesJudged(Payload):
    """Every gate's result before production."""

    gates: list[GateResult]


class GateBypassed(Payload):
    """A gate the category may bypass, bypassed and said so."""

    gate: str
    reason: str
    category: str


class DeploymentScheduled(Payload):
    """The deploy's slot and who was told, when."""

    slot: str
    notified: list[str]
    notified_at: str
    immediate: bool = False


class DeploymentStarted(Payload):
    """The production deploy begins, from the version before it."""

    version: str
    previous_version: str
    environment: str = "production"


class DeploymentFinished(Payload):
    """The production deploy's end (succeeded or failed), or what recovery found."""

    version: str
    exit_code: int | None = None
    timed_out: bool = False
    recovered: bool = False
    note: str | None = None


class Verified(Payload):
    """The checks after deploying (passed or failed)."""

    checks: list[CheckResult]


class RollbackStarted(Payload):
    """A rollback to the version before, and why."""

    to_version: str
    reason: str


class RollbackFinished(Payload):
    """A rollback's end (succeeded or failed): how long, against the plan's estimate."""

    to_version: str
    minutes: float
    estimate_minutes: int
    exit_code: int | None = None
    checks: list[CheckResult] = []


class ChangeCancelled(Payload):
    """The change withdrawn before production, and which runs were stopped."""

    reason: str = ""
    cancelled_runs: list[str] = []


class ChangeClosed(Payload):
    """The change's record closed with its outcome."""

    outcome: str


class PracticeFinding(Payload):
    """A prohibited practice found (policy section 6): a record of its own."""

    finding_id: str
    practice: str
    description: str
    service: str | None
    related_change: str | None
    detail: str
    source: str


class PracticesAudited(Payload):
    """One run of the practices audit: what it checked and found."""

    since: str
    checked: dict[str, Any]
    findings: list[str]
    new: list[str]
    problems: list[str]


class IntegrityAlarm(Payload):
    """A change stopped because its record did not hold or did not clear it."""

    change: str
    action: str
    problems: list[str]


class Note(Payload):
    """A remark worth keeping."""

    text: str


class NotificationSent(Payload):
    """People told about something (an incident)."""

    to: list[str]
    about: str


class NoticeDelivery(Payload):
    """A notice handed to a channel (or refused by it): to whom, how, what kind.

    `to` is a roster id, or `channel:<block>` for a team channel. Never the notice's
    text: it may hold a one-time code. `reason` says why a delivery failed.
    """

    to: str
    channel: str
    kind: str
    subject: str
    reason: str | None = None


class TicketUpdated(Payload):
    """The ticket system was told about an incident."""

    incident_id: str
    incident_key: str


class TicketSnapshot(Payload):
    """The ticket as the ticket system held it (a sync), or the documentation given."""

    source: str | None = None
    status: str | None = None
    fields: dict[str, Any] | None = None
    updated: str | None = None
    digest: str | None = None
    purpose: str | None = None
    change: dict[str, Any] | None = None


class IncidentOpened(Payload):
    """An incident for a rollback or failed change, with its priority and review's due time."""

    incident_id: str
    priority: int
    summary: str
    review_due: str
    linked_change: str | None = None


class IncidentReviewed(Payload):
    """The post-incident review held."""

    incident_id: str
    reviewer: str | None = None
    notes: str = ""


class ObligationOpened(Payload):
    """Something an emergency change owes, by when, from whom."""

    obligation: str
    due: str
    owner_role: str
    owners: list[str]


class FollowUpSent(Payload):
    """A reminder or escalation about an open obligation."""

    obligation: str
    status: str
    due: str
    to: list[str]
    detail: str


class EffectStarted(Payload):
    """A side effect about to happen (its intent), so a crash is found afterwards."""

    effect_id: str
    action: str
    details: dict[str, Any]


class EffectFinished(Payload):
    """A side effect's outcome."""

    effect_id: str
    ok: bool
    result: dict[str, Any]


class ProcedureChecked(Payload):
    """Whether a standard change fits its pre-approved procedure, and why not."""

    procedure: str | None
    fits: bool
    reasons: list[str]


class RunStarted(Payload):
    """A flow run started for the change (by the Jira sync)."""

    flow_run_id: str
    deployment: str
    revision: str
    reason: str


class CodeHostRead(Payload):
    """What the code host said about the change's pull request."""

    pull_request: str
    url: str
    head_sha: str
    author: str
    reviews: list[dict[str, Any]]
    required_checks: list[str] | None
    required_from: str
    checks: list[dict[str, Any]]
    scan: str
    analysed: bool
    open_alerts: list[dict[str, Any]]
    changed_paths: list[str]
    commit_logins: list[str] = []


class SastWaiverApplied(Payload):
    """A SAST finding let through by its waiver."""

    finding: str
    approved_by: str
    reason: str
    expires: str
    head_sha: str


PAYLOADS: dict[EventType, type[Payload]] = {
    EventType.CHANGE_SUBMITTED: ChangeSubmitted,
    EventType.CHANGE_RECLASSIFIED: ChangeReclassified,
    EventType.VALIDATION_FAILED: ValidationFailed,
    EventType.APPROVAL_REQUESTED: ApprovalRequested,
    EventType.APPROVAL_RECORDED: Decided,
    EventType.APPROVAL_GRANTED: ApprovalGranted,
    EventType.CHANGE_REJECTED: ChangeRejected,
    EventType.APPROVAL_EXPIRED: ApprovalExpired,
    EventType.STAGING_STARTED: StagingStarted,
    EventType.STAGING_PASSED: StagingResults,
    EventType.STAGING_FAILED: StagingResults,
    EventType.GATES_PASSED: GatesJudged,
    EventType.GATES_BLOCKED: GatesJudged,
    EventType.DEPLOYMENT_SCHEDULED: DeploymentScheduled,
    EventType.DEPLOYMENT_STARTED: DeploymentStarted,
    EventType.DEPLOYMENT_SUCCEEDED: DeploymentFinished,
    EventType.DEPLOYMENT_FAILED: DeploymentFinished,
    EventType.VERIFICATION_PASSED: Verified,
    EventType.VERIFICATION_FAILED: Verified,
    EventType.ROLLBACK_STARTED: RollbackStarted,
    EventType.ROLLBACK_SUCCEEDED: RollbackFinished,
    EventType.ROLLBACK_FAILED: RollbackFinished,
    EventType.CHANGE_CANCELLED: ChangeCancelled,
    EventType.CHANGE_CLOSED: ChangeClosed,
    EventType.PRACTICE_FINDING: PracticeFinding,
    EventType.PRACTICES_AUDITED: PracticesAudited,
    EventType.INTEGRITY_ALARM: IntegrityAlarm,
    EventType.APPROVAL_ATTEMPT_FAILED: ApprovalAttemptFailed,
    EventType.APPROVAL_CODES_REISSUED: ApprovalCodesReissued,
    EventType.AVAILABILITY_CONFIRMED: Decided,
    EventType.CODE_HOST_READ: CodeHostRead,
    EventType.EFFECT_FINISHED: EffectFinished,
    EventType.EFFECT_STARTED: EffectStarted,
    EventType.ESCALATED: FollowUpSent,
    EventType.GATE_BYPASSED: GateBypassed,
    EventType.INCIDENT_OPENED: IncidentOpened,
    EventType.INCIDENT_REVIEWED: IncidentReviewed,
    EventType.NOTE: Note,
    EventType.NOTIFICATION_SENT: NotificationSent,
    EventType.NOTICE_DELIVERED: NoticeDelivery,
    EventType.NOTICE_FAILED: NoticeDelivery,
    EventType.OBLIGATION_OPENED: ObligationOpened,
    EventType.OBLIGATION_RESPONDED: Decided,
    EventType.PROCEDURE_CHECKED: ProcedureChecked,
    EventType.REMINDER_SENT: FollowUpSent,
    EventType.RUN_STARTED: RunStarted,
    EventType.SAST_WAIVER_APPLIED: SastWaiverApplied,
    EventType.TICKET_SNAPSHOT: TicketSnapshot,
    EventType.TICKET_UPDATED: TicketUpdated,
}
"""Each event type's payload model."""

P = TypeVar("P", bound=Payload)


@dataclass(frozen=True)
class NewEvent:
    """An event to append."""

    change_id: str
    type: str
    actor: str
    payload: dict[str, Any]
    at: datetime



class PayloadError(ValueError):
    """A payload that is not its event type's: the message names each field and what is wrong."""


def check_payload(event_type: str, payload: Mapping[str, Any]) -> Payload:
    """`payload` as its type's model; what the change log checks before it appends.

    Raises:
        PayloadError: the type is unknown, or a field is missing, unknown or mistyped.
    """
    try:
        model = PAYLOADS[EventType(str(event_type))]
    except ValueError:
        raise PayloadError(f"unknown event type {str(event_type)!r}") from None
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                             for e in exc.errors())
        raise PayloadError(f"the payload of {str(event_type)!r} is not a {model.__name__}: "
                           f"{problems}") from None


def payload_of(event: ChangeEvent, model: type[P]) -> P:
    """The payload of a recorded `event` as `model`, which must be its type's.

    Raises:
        TypeError: `model` is not the payload model of the event's type.
    """
    if PAYLOADS.get(EventType(event.type)) is not model:
        raise TypeError(f"a {event.type} event's payload is not a {model.__name__}")
    return model.model_validate(event.payload)
