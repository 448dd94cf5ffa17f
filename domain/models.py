"""The change-management vocabulary: pydantic models that every room speaks.

Models here are plain data. Rules live in the sibling modules and take `now` and the
policy as arguments; nothing in `domain/` does I/O or reads a clock.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}\Z")
"""Ids, keys, actors and versions: printable, no spaces, no control characters."""


class Frozen(BaseModel):
    """Base for immutable, strictly-keyed models."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Category(StrEnum):
    """The four change categories of policy section 1."""

    STANDARD = "standard"
    NORMAL = "normal"
    MAJOR = "major"
    EMERGENCY = "emergency"


class Decision(StrEnum):
    """An approver's answer."""

    APPROVE = "approve"
    DECLINE = "decline"


class Purpose(StrEnum):
    """What a person's decision is for: it names the request, the form and the record."""

    REVIEW = "review"
    SELF_APPROVAL = "self-approval"
    SIGN_OFF = "staging-sign-off"
    VERBAL = "verbal-approval"
    AVAILABILITY = "availability"


class GateStatus(StrEnum):
    """A gate's verdict.

    `UNKNOWN` (cannot be evaluated) and `PENDING` (its evidence is still to come: an
    approval not yet given, staging not yet run) block like `FAILED`.
    """

    PASSED = "passed"
    FAILED = "failed"
    UNKNOWN = "unknown"
    PENDING = "pending"
    BYPASSED = "bypassed"

    @property
    def blocks(self) -> bool:
        """True for a verdict that stops the change (failed, undecidable or pending)."""
        return self in (GateStatus.FAILED, GateStatus.UNKNOWN, GateStatus.PENDING)


class Person(Frozen):
    """Someone in the roster.

    `slack_id` is their Slack member id (`U0123ABCD`), for direct messages; `channels` is
    their own order of personal channels, when it differs from the settings' order.
    """

    id: str
    name: str
    email: str
    jira_account: str | None = None
    github_login: str | None = None
    slack_id: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,31}$")
    channels: tuple[Literal["email", "slack", "outbox"], ...] = ()
    roles: frozenset[str] = frozenset()
    senior: bool = False
    shared_account: bool = False

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a valid person id (letters, digits, ._:@+-)")
        return value


class Roster(Frozen):
    """Everyone who may author, approve or own a change, by id."""

    people: dict[str, Person]

    def by_github_login(self, login: str) -> Person | None:
        """The person whose `github_login` is `login` (case-insensitive, as GitHub's)."""
        wanted = login.lower()
        return next((p for p in self.people.values()
                     if p.github_login and p.github_login.lower() == wanted), None)

    def get(self, person_id: str) -> Person | None:
        """The person with this id, or None."""
        return self.people.get(person_id)

    def holding(self, role: str) -> list[Person]:
        """People who hold `role` and are not shared accounts, in id order."""
        return [
            p for _, p in sorted(self.people.items()) if role in p.roles and not p.shared_account
        ]


class RollbackPlan(Frozen):
    """Policy section 4: the five parts of a documented rollback plan.

    Every field is optional here so that an incomplete plan can be held and its gaps
    listed (`domain.rollback.missing_rollback_fields`); completeness is a rule, not a type.
    """

    trigger: str | None = None
    steps: str | None = None
    owner: str | None = None
    verification: str | None = None
    time_estimate_minutes: int | None = Field(default=None, gt=0)


class CodeReviewEvidence(Frozen):
    """Who reviewed the code, as person ids from the roster, and the pull request.

    With a code host configured, only `pull_request` (or a pull-request `url`) is used:
    the reviews are read from the host, not taken from the ticket.
    """

    reviewers: list[str] = []
    url: str | None = None
    pull_request: str | None = None


class CiEvidence(Frozen):
    """The CI pipeline's result for the change's commit."""

    status: str | None = None
    failed_tests: int | None = None
    url: str | None = None


class SastWaiver(Frozen):
    """An accepted SAST finding: which, who accepted it (a security role), why, until when."""

    finding: str = Field(min_length=1, description="The alert number (#12) or rule@path")
    approved_by: str
    reason: str = Field(min_length=1)
    expires: date


class SastEvidence(Frozen):
    """Open SAST findings by severity, after waivers; or a SARIF file and the waivers."""

    critical: int | None = None
    high: int | None = None
    url: str | None = None
    sarif: str | None = Field(default=None, description="A SARIF file attached to the change")
    waivers: list[SastWaiver] = []


class Evidence(Frozen):
    """What the gates are judged on. Missing evidence makes its gate UNKNOWN (blocks)."""

    code_review: CodeReviewEvidence | None = None
    ci: CiEvidence | None = None
    sast: SastEvidence | None = None
    staging_passed: bool | None = None


class IncidentFacts(Frozen):
    """What an emergency's `incident_ref` names, and where that was learnt.

    Attributes:
        key: the incident (or CVE) reference.
        source: `ticket_system` (read from the incident itself) or `ticket` (the change
            ticket's claim: a CVE, or a ticket system that holds no incidents).
        priority: the incident's priority (1 is the highest), when read.
        open: whether the incident is still open, when read.
        summary: the incident's summary, when read.
    """

    key: str
    source: Literal["ticket_system", "ticket"]
    priority: int | None = None
    open: bool | None = None
    summary: str = ""


class ChangeRequest(Frozen):
    """A validated change ticket."""

    id: str
    summary: str
    description: str
    scope: str
    risk_assessment: str
    testing_plan: str
    rollback_plan: RollbackPlan
    category: Category
    service: str
    version: str
    author: str
    labels: list[str] = []
    components: list[str] = []
    changed_paths: list[str] = []
    evidence: Evidence = Evidence()
    standard_procedure: str | None = None
    change_kind: str | None = None
    emergency_trigger: str | None = None
    incident_ref: str | None = None
    incident: IncidentFacts | None = None
    """An emergency's incident as checked at submit (see `IncidentFacts`)."""
    contributors: list[str] = []
    """Roster ids of who else wrote the change, from the code host: the pull request's
    author and its commits' authors and committers. Like the author, none of them may
    approve, review or sign off the change."""

    def by(self, person_id: str) -> bool:
        """Whether `person_id` wrote the change: its author or a contributor."""
        return person_id == self.author or person_id in self.contributors


class Approval(Frozen):
    """One person's decision for one role, with where it came from."""

    role: str
    person_id: str
    decision: Decision
    at: datetime
    channel: str = "ui"
    comment: str = ""
    fallback_reason: str | None = None
    recorded_by: str | None = None
    """Who recorded a verbal approval (never the approver: the approver confirms later)."""


EvidenceSource = Literal["code_host", "changeflow", "ticket"]
"""Where a gate's evidence came from: read from the code host, a run changeflow performed
or judged itself (staging, the rollback plan, the approvals), or the ticket's claim."""


class GateResult(Frozen):
    """One gate's verdict with its reason and where its evidence came from."""

    gate: str
    status: GateStatus
    reason: str
    source: EvidenceSource = "changeflow"

    @property
    def blocks(self) -> bool:
        """True when this gate stops the change (failed, undecidable or pending)."""
        return self.status.blocks


class Incident(Frozen):
    """An incident caused by a change (an executed rollback is one, P3 or worse)."""

    id: str
    change_id: str
    priority: int = Field(ge=1, le=5)
    summary: str
    opened_at: datetime
    review_due: datetime


class ChangeEvent(Frozen):
    """An event as stored in the change log, with its place in the hash chain."""

    seq: int
    change_id: str
    type: str
    at: datetime
    actor: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class Ticket(Frozen):
    """A change ticket as a ticket system holds it, before validation.

    `fields` holds the ticket's change fields by changeflow's names (summary, category,
    service, version, rollback_plan, ...); the intake rule turns them into a
    `ChangeRequest` or a list of problems.
    """

    key: str
    status: str
    fields: dict[str, Any]
    updated: datetime | None = None
    watchers: list[str] = []


class TicketApproval(Frozen):
    """A decision taken in the ticket system (a JSM approval, an approving transition).

    Attributes:
        ref: identifies it in the ticket system, so it is recorded once.
        role: the role it was configured for.
        person_id: the roster id of who decided (`jira:<account>` if not in the roster).
        decision: approve or decline.
        at: when it was decided.
        source: where it came from (`jira-jsm`, `jira-transition`).
        account: the decider's stable account id in the ticket system.
    """

    ref: str
    role: str
    person_id: str | None
    decision: Decision
    at: datetime
    source: str
    account: str | None = None


class CommandResult(Frozen):
    """What a finished (or killed) subprocess left behind."""

    argv: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    duration_seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the command exited 0 within its timeout."""
        return self.exit_code == 0 and not self.timed_out


class CheckResult(Frozen):
    """One HTTP check's verdict with what was seen."""

    name: str
    url: str
    passed: bool
    status_code: int | None
    detail: str
    duration_seconds: float


class Notice(Frozen):
    """A message to a person (by roster id) about a change.

    `link` is where to act (the run's page in the Prefect UI, the ticket); `kind` says what
    the notice is (`domain.notices`), e.g. `approval-code`, which only a person may receive.
    """

    to: str
    subject: str
    body: str
    change_id: str | None = None
    kind: str = "info"
    link: str | None = None
