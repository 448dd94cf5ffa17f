"""A Jira project set up the way `config/jira.yaml` expects, on the fake Jira.

Used by the adapter tests, the sync's flow tests and the benchmark: the roster's people
as Jira users (matched on `jira_account`), a service account for changeflow, every
mapped field, a change workflow, and change tickets built from the example tickets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from config.jira import JiraMapping
from config.loader import load_config
from config.settings import PROJECT_ROOT
from tests.fakes.jira_server import FakeJira, FakeUser

NUMBER_FIELDS = {"rollback_time_estimate_minutes", "ci_failed_tests", "sast_critical",
                 "sast_high"}
USER_LIST_FIELDS = {"code_reviewers"}
EVIDENCE_VALUES = {"code_reviewers": "Code reviewers", "ci_status": "CI status",
                   "ci_failed_tests": "CI failed tests", "sast_critical": "SAST critical",
                   "sast_high": "SAST high"}
"""Optional evidence fields; `with_evidence_values` maps and creates them."""

STATUSES = ["Open", "Ready for change", "In review", "Needs information", "Rejected",
            "Failed", "Closed", "Cancelled", "Lead approved", "QA approved"]


@dataclass
class JiraProject:
    """The fake, its users by roster id, the service account, and the mapping used."""

    fake: FakeJira
    users: dict[str, FakeUser]
    service: FakeUser
    mapping: JiraMapping

    def settings(self) -> dict[str, Any]:
        """Settings keyword arguments that point changeflow at this Jira."""
        return {"tickets": "jira", "jira_url": self.fake.url, "jira_token": self.service.token,
                "jira_email": self.service.email if self.fake.mode == "cloud" else None,
                "jira_timeout_seconds": 2}

    def field(self, ours: str) -> str:
        """The Jira field name of one of changeflow's fields."""
        name = getattr(self.mapping.fields, ours)
        assert name is not None, ours
        return str(name)

    def create_change(self, example: str | dict[str, Any], status: str = "Open",
                      **overrides: Any) -> str:
        """A change ticket with the fields of an example ticket (e.g. "CHG-101")."""
        data = dict(load_example(example) if isinstance(example, str) else example)
        data.update(overrides)
        author = self.users[data.pop("author")]
        return self.fake.create_issue(self.mapping.project, self.jira_fields(data),
                                      status=status, as_user=author)

    def jira_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        """changeflow's ticket fields as Jira field values, by Jira field name."""
        mapped = self.mapping.fields
        out: dict[str, Any] = {"summary": data.get("summary"),
                               "description": data.get("description"),
                               "labels": data.get("labels", [])}
        plain = ["category", "service", "version", "scope", "risk_assessment", "testing_plan",
                 "standard_procedure", "change_kind", "emergency_trigger", "incident_ref"]
        for ours in plain:
            if data.get(ours) is not None and getattr(mapped, ours):
                out[self.field(ours)] = data[ours]
        for part, value in (data.get("rollback_plan") or {}).items():
            out[self.field(f"rollback_{part}")] = value
        if data.get("changed_paths") and mapped.changed_paths:
            out[self.field("changed_paths")] = "\n".join(data["changed_paths"])
        evidence = data.get("evidence") or {}
        for ours, kind in (("code_review_url", "code_review"), ("ci_url", "ci"),
                           ("sast_url", "sast")):
            url = (evidence.get(kind) or {}).get("url")
            if url and getattr(mapped, ours):
                out[self.field(ours)] = url
        reviewers = (evidence.get("code_review") or {}).get("reviewers", [])
        values = {"code_reviewers": [_ref(self.users[r]) for r in reviewers],
                  "ci_status": (evidence.get("ci") or {}).get("status"),
                  "ci_failed_tests": (evidence.get("ci") or {}).get("failed_tests"),
                  "sast_critical": (evidence.get("sast") or {}).get("critical"),
                  "sast_high": (evidence.get("sast") or {}).get("high")}
        for ours, value in values.items():
            if getattr(mapped, ours) and value not in (None, []):
                out[self.field(ours)] = value
        return {k: v for k, v in out.items() if v is not None}


def _ref(user: FakeUser) -> dict[str, str]:
    return {"accountId": user.id} if user.cloud else {"name": user.id}


def load_example(key: str) -> dict[str, Any]:
    """An example ticket's fields (examples/tickets/KEY.yaml)."""
    path = PROJECT_ROOT / "examples" / "tickets" / f"{key}.yaml"
    return dict(yaml.safe_load(path.read_text()))


def with_evidence_values(mapping: JiraMapping) -> JiraMapping:
    """The mapping with the optional evidence fields on (so the gates can pass)."""
    return mapping.model_copy(update={"fields": mapping.fields.model_copy(
        update=EVIDENCE_VALUES)})


def jira_project(fake: FakeJira, mapping: JiraMapping | None = None,
                 config_dir: Path | None = None) -> JiraProject:
    """Set up the change project on `fake`: users, fields, workflow."""
    config = load_config(config_dir or PROJECT_ROOT / "config")
    mapping = mapping or config.jira or JiraMapping()
    users = {}
    for person in config.roster.people.values():
        if person.jira_account:
            ident = ({"account_id": person.jira_account} if fake.mode == "cloud"
                     else {"name": person.jira_account})
            users[person.id] = fake.add_user(person.name, person.email, **ident)
    service = fake.add_user("changeflow", "changeflow@example.com")
    for ours, name in mapping.fields.model_dump().items():
        if name is None:
            continue
        if ours in NUMBER_FIELDS:
            fake.add_field(name, "number")
        elif ours in USER_LIST_FIELDS:
            fake.add_field(name, "array", items="user")
        else:
            fake.add_field(name)
    if mapping.project not in ("CHG", "INC"):
        fake.add_project(mapping.project, issue_types=(mapping.issue_type,))
    fake.set_workflow(mapping.project, [(f"To {s}", None, s, None) for s in STATUSES],
                      initial="Open")
    return JiraProject(fake, users, service, mapping)
