"""How changeflow's change fields map onto a Jira project: `config/jira.yaml`, as data.

Only Jira field *names* are configured; the adapter resolves them to ids through Jira's
field list when it starts, and refuses a name that is missing or ambiguous. Every
default below is the name a team gets if it creates the fields as docs/jira.md lists them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from domain.models import Frozen

ROLLBACK_KEYS = ("rollback_trigger", "rollback_steps", "rollback_owner",
                 "rollback_verification", "rollback_time_estimate_minutes")


class JiraFields(Frozen):
    """changeflow field -> the name of the Jira field that holds it (None: not mapped).

    Summary, description, labels, components, reporter (the author) and watchers are
    Jira's own fields and need no mapping.
    """

    category: str = "Change category"
    service: str = "Service"
    version: str = "Deploy version"
    scope: str = "Scope"
    risk_assessment: str = "Risk assessment"
    testing_plan: str = "Testing plan"
    rollback_trigger: str = "Rollback trigger"
    rollback_steps: str = "Rollback steps"
    rollback_owner: str = "Rollback owner"
    rollback_verification: str = "Rollback verification"
    rollback_time_estimate_minutes: str = "Rollback time estimate (minutes)"
    changed_paths: str | None = "Changed paths"
    code_review_url: str | None = "Pull request"
    ci_url: str | None = "CI run"
    sast_url: str | None = "SAST report"
    code_reviewers: str | None = None
    ci_status: str | None = None
    ci_failed_tests: str | None = None
    sast_critical: str | None = None
    sast_high: str | None = None
    standard_procedure: str | None = "Standard procedure"
    change_kind: str | None = "Change kind"
    emergency_trigger: str | None = "Emergency trigger"
    incident_ref: str | None = "Incident reference"


class JiraStatuses(Frozen):
    """The Jira statuses the sync acts on."""

    ready: str = "Ready for change"
    cancelled: list[str] = ["Cancelled"]


class JiraTransitions(Frozen):
    """changeflow's ticket status -> the Jira status the ticket is moved to."""

    needs_information: str = "Needs information"
    rejected: str = "Rejected"
    failed: str = "Failed"
    closed: str = "Closed"

    def target(self, status: str) -> str | None:
        """The Jira status for one of changeflow's, or None if it has none."""
        return {"needs information": self.needs_information, "rejected": self.rejected,
                "failed": self.failed, "closed": self.closed}.get(status)


class JiraApprovals(Frozen):
    """Where approvals come from when Jira is the record.

    `prefect`: the Prefect UI form with one-time codes (Jira only shows the outcome).
    `jsm`: Jira Service Management approvals, one per role, by approval name.
    `transition`: an approving transition per role; its changelog author is the approver.
    """

    mode: Literal["prefect", "jsm", "transition"] = "prefect"
    names: dict[str, str] = {}
    """role -> JSM approval name (`jsm`) or approving transition name (`transition`)."""


class JiraIncidents(Frozen):
    """Where incidents opened by a rollback are created, and how they link to the change."""

    project: str = "INC"
    issue_type: str = "Incident"
    link_type: str = "Relates"
    priorities: dict[str, int] = {"Highest": 1, "High": 2, "Medium": 3, "Low": 4,
                                  "Lowest": 5}
    """Jira's priority names as incident priorities (1 is P1): an emergency's incident must
    be of priority 1."""


class JiraMapping(Frozen):
    """`config/jira.yaml`: the project, its issue type, and the mappings."""

    project: str = "CHG"
    issue_type: str = "Change"
    fields: JiraFields = JiraFields()
    statuses: JiraStatuses = JiraStatuses()
    transitions: JiraTransitions = JiraTransitions()
    approvals: JiraApprovals = JiraApprovals()
    incidents: JiraIncidents = JiraIncidents()
    sync_overlap_seconds: int = Field(default=300, ge=0)
    """How far back each sync looks before the last one's watermark (clocks and
    eventually consistent search)."""
