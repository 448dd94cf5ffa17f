"""SOC2-CHG-001 as typed data. `config/policy.yaml` is loaded into `Policy`.

The models check shape and ranges; `Policy.problems()` checks what refers to what
(roles, gates, procedures), so a broken file is reported all at once, each problem
with the key path where it sits.
"""

from __future__ import annotations

from datetime import date, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from domain.models import Category, EvidenceSource, Frozen

GATES = ("code_review", "automated_tests", "security_scan", "staging_validation",
         "rollback_plan", "approval")
"""The six gates of policy section 3, by name."""

STANDARD_MINIMUM_GATES = ("automated_tests", "rollback_plan", "approval")
"""Gates every standard procedure keeps, whatever else it drops."""

ROLLBACK_FIELDS = ("trigger", "steps", "owner", "verification", "time_estimate_minutes")
"""The five parts of a rollback plan (policy section 4)."""

CHANGE_LOG_FIELDS = ("change_id", "description", "author", "approvers", "deployment_date",
                     "outcome", "incidents")
"""What section 7 says every production change is logged with."""

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ApprovalRequirement(Frozen):
    """One approval a category needs.

    Attributes:
        role: the role whose holder must approve.
        self_approval: the change's author may (and does) give it; standard changes.
        verbal: given by voice or phone and recorded by someone else; emergencies.
        fallback_role: who may approve instead when the role's holder is unavailable,
            with the reason recorded.
    """

    role: str
    self_approval: bool = False
    verbal: bool = False
    fallback_role: str | None = None


class CategoryPolicy(Frozen):
    """What a category requires."""

    description: str
    examples: list[str] = []
    approvals: list[ApprovalRequirement] = Field(min_length=1)
    gates: list[str]
    bypassable_gates: list[str] = []
    deploy_at: Literal["window", "immediately"] = "window"
    """`window`: the next slot in a maintenance window, after notice (section 2 step 4);
    `immediately`: as soon as the gates pass (the emergency process, section 5)."""


class ProcessPolicy(Frozen):
    """Who takes part in the normal process's steps (section 2), beside the approvers.

    Attributes:
        sign_off_role: step 3, who signs off the staging tests (every category that
            runs staging).
        reviewer_role: step 5, whose approval makes its holder the change's reviewer,
            who must be available for the deploy with the engineer.
    """

    sign_off_role: str
    reviewer_role: str


class SecurityReviewTrigger(Frozen):
    """Section 2 step 2: what makes a change need Security's review."""

    role: str = "security"
    areas: dict[str, SecurityArea]


class SecurityArea(Frozen):
    """One sensitive area (authentication, data access, encryption) and its markers."""

    labels: list[str] = []
    components: list[str] = []
    paths: list[str] = []


class CodeReviewGate(Frozen):
    """Section 3: at least two reviewers, at least one senior, none the author."""

    min_reviewers: int = Field(default=2, ge=1)
    min_senior: int = Field(default=1, ge=0)
    author_may_review: bool = False


class SecurityScanGate(Frozen):
    """Section 3: no critical or high SAST finding left unaddressed."""

    blocking_severities: list[Literal["critical", "high", "medium", "low"]] = [
        "critical", "high"]


DEFAULT_SOURCES: tuple[EvidenceSource, ...] = ("code_host", "changeflow")
"""What a gate's evidence may come from when `gates.evidence_sources` does not name it:
never a ticket's claim."""


class GatesPolicy(Frozen):
    """Parameters of the gates that have any, and where their evidence may come from.

    `evidence_sources` maps a gate to the sources accepted for it; a gate not named
    accepts `DEFAULT_SOURCES`. A ticket's claim (`ticket`) counts only where listed.
    """

    code_review: CodeReviewGate = CodeReviewGate()
    security_scan: SecurityScanGate = SecurityScanGate()
    evidence_sources: dict[str, list[EvidenceSource]] = {}

    def sources(self, gate: str) -> list[EvidenceSource]:
        """The sources accepted for `gate`'s evidence."""
        return self.evidence_sources.get(gate, list(DEFAULT_SOURCES))

    def accepts(self, gate: str, source: EvidenceSource) -> bool:
        """Whether evidence for `gate` from `source` may count."""
        return source in self.sources(gate)


class RollbackPolicy(Frozen):
    """Section 4: the plan's required fields and what an executed rollback opens."""

    required_fields: list[str] = list(ROLLBACK_FIELDS)
    incident_priority: int = Field(default=3, ge=1, le=5)
    post_incident_review_business_days: int = Field(default=5, ge=1)


class EmergencyPolicy(Frozen):
    """Section 5: what an emergency owes after the fact."""

    triggers: list[str]
    approver_role: str
    fallback_role: str
    document_within_hours: int = Field(default=24, ge=1)
    review_within_business_days: int = Field(default=5, ge=1)
    signoff_role: str
    review_role: str = "engineering_lead"
    recorder_roles: list[str] = []
    deferrable_fields: list[Literal["scope", "risk_assessment", "testing_plan"]] = []
    remind_before_hours: int = Field(default=6, ge=0)
    repeat_notice_hours: int = Field(default=24, ge=1)


class ApprovalCodesPolicy(Frozen):
    """Guessing the one-time codes of a decision form (section 2: attributable approvals).

    After `max_wrong_codes` wrong codes for one request, its codes are withdrawn, new ones
    sent, and the holders of `alarm_role` told.
    """

    max_wrong_codes: int = Field(default=5, ge=1)
    alarm_role: str = "ciso"


class Window(Frozen):
    """A recurring period of local time on some weekdays (end after start)."""

    days: list[Weekday] = Field(min_length=1)
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class Freeze(Frozen):
    """A period, in dates inclusive, when no normal change deploys."""

    start: date
    end: date
    reason: str

    @model_validator(mode="after")
    def _ordered(self) -> Freeze:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class SchedulePolicy(Frozen):
    """Section 2 step 4: maintenance windows, peak hours, freezes and notice."""

    timezone: str
    maintenance_windows: list[Window] = Field(min_length=1)
    peak_hours: list[Window] = []
    freezes: list[Freeze] = []
    notice_hours: int = Field(default=24, ge=0)
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "'Europe/Berlin' or 'UTC')") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The policy's time zone."""
        return ZoneInfo(self.timezone)


class ChangeLogPolicy(Frozen):
    """Section 7: the fields every record holds and how long it is kept."""

    required_fields: list[str] = list(CHANGE_LOG_FIELDS)
    retention_years: int = Field(default=3, ge=3)


class StandardProcedure(Frozen):
    """A pre-approved routine change and its limits (section 1, standard)."""

    description: str
    services: list[str] = ["*"]
    paths: list[str] = []
    kinds: list[str] = []
    gates: list[str]


class ProhibitedPractice(Frozen):
    """Section 6, one prohibited practice."""

    id: str
    description: str


class Policy(Frozen):
    """SOC2-CHG-001 as data."""

    id: str
    version: str
    roles: dict[str, str]
    categories: dict[Category, CategoryPolicy]
    process: ProcessPolicy
    security_review: SecurityReviewTrigger
    gates: GatesPolicy = GatesPolicy()
    rollback: RollbackPolicy = RollbackPolicy()
    emergency: EmergencyPolicy
    approval_codes: ApprovalCodesPolicy = ApprovalCodesPolicy()
    schedule: SchedulePolicy
    change_log: ChangeLogPolicy = ChangeLogPolicy()
    standard_procedures: dict[str, StandardProcedure] = {}
    prohibited_practices: list[ProhibitedPractice] = []

    def problems(self) -> list[tuple[str, str]]:  # noqa: C901 (a flat list of checks)
        """Cross-references that do not resolve, as (key path, message) pairs."""
        found: list[tuple[str, str]] = []

        def role(path: str, name: str | None) -> None:
            if name is not None and name not in self.roles:
                found.append((path, f"unknown role {name!r} (known: {', '.join(self.roles)})"))

        def gate(path: str, name: str) -> None:
            if name not in GATES:
                found.append((path, f"unknown gate {name!r} (known: {', '.join(GATES)})"))

        for category in Category:
            if category not in self.categories:
                found.append(("categories", f"category {category.value!r} is missing"))
        for cat, spec in self.categories.items():
            base = f"categories.{cat.value}"
            for i, req in enumerate(spec.approvals):
                role(f"{base}.approvals[{i}]", req.role)
                role(f"{base}.approvals[{i}].fallback_role", req.fallback_role)
            for i, name in enumerate(spec.gates):
                gate(f"{base}.gates[{i}]", name)
            for i, name in enumerate(spec.bypassable_gates):
                gate(f"{base}.bypassable_gates[{i}]", name)
        for name in self.gates.evidence_sources:
            gate(f"gates.evidence_sources.{name}", name)
        role("process.sign_off_role", self.process.sign_off_role)
        role("process.reviewer_role", self.process.reviewer_role)
        role("security_review.role", self.security_review.role)
        role("emergency.approver_role", self.emergency.approver_role)
        role("emergency.fallback_role", self.emergency.fallback_role)
        role("emergency.signoff_role", self.emergency.signoff_role)
        for i, field in enumerate(self.rollback.required_fields):
            if field not in ROLLBACK_FIELDS:
                found.append((f"rollback.required_fields[{i}]",
                              f"unknown field {field!r} (known: {', '.join(ROLLBACK_FIELDS)})"))
        for i, field in enumerate(self.change_log.required_fields):
            if field not in CHANGE_LOG_FIELDS:
                found.append((f"change_log.required_fields[{i}]",
                              f"unknown field {field!r} (known: {', '.join(CHANGE_LOG_FIELDS)})"))
        role("emergency.review_role", self.emergency.review_role)
        role("approval_codes.alarm_role", self.approval_codes.alarm_role)
        for i, name in enumerate(self.emergency.recorder_roles):
            role(f"emergency.recorder_roles[{i}]", name)
        for name, proc in self.standard_procedures.items():
            for i, g in enumerate(proc.gates):
                gate(f"standard_procedures.{name}.gates[{i}]", g)
            missing = [g for g in STANDARD_MINIMUM_GATES if g not in proc.gates]
            if missing:
                found.append((f"standard_procedures.{name}.gates",
                              f"must include {', '.join(missing)} (a standard change still "
                              "needs CI, a rollback plan and its self-approval)"))
        return found


SecurityReviewTrigger.model_rebuild()
