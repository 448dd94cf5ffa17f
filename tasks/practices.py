"""Policy section 6 after the fact: what reached production, compared with the change log.

The sources, per service in the catalog:

- the deploy command's own record (`deploy_record`): every production deploy it made
  must be one a change recorded (its deployment or its rollback), or the baseline;
- the code host's deployments to the service's production environment (with
  `CHANGEFLOW_CODE_HOST=github`): each must belong to a change, come from a pull request
  whose review meets the gate, carry its required checks green, and not be made by a
  shared account;
- the change log itself: no approval recorded for a shared account;
- the environments' configuration files (`config_files`): no production secret in
  another environment, no reference to production from one (compared by keyed
  fingerprints: no secret is ever shown).

Each finding has a stable id from what it is about, is recorded once as a
`practice_finding` record of its own, and its first recording notifies the CISO and
Security.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from domain.code_host import Deployment, Review
from domain.credentials import find_production_credentials
from domain.events import (
    CodeHostRead,
    Decided,
    DeploymentStarted,
    EventType,
    RollbackFinished,
    RollbackStarted,
    payload_of,
)
from domain.host_gates import host_ci_gate, host_code_review_gate, required_checks
from domain.models import GateStatus, Notice
from domain.services import Service
from integrations.env_files import read_env_file
from integrations.factory import Adapters
from tasks.common import SYSTEM, record
from tasks.notices import notify
from tasks.tickets import ticket_task

PRACTICES = {
    "no_code_review": "deployed without code review, or with a review short of the gate",
    "ci_bypass": "deployed without its required checks succeeding",
    "undocumented_change": "a production deployment with no change behind it",
    "shared_account": "a deployment or approval by a shared account",
    "production_credentials_outside_production":
        "production credentials in a non-production environment",
}
"""Section 6's prohibited practices by the policy's ids, as the audit looks for them (the
policy file's own description is recorded when it has one)."""

AUDIT_STREAM = "PRACTICES-AUDIT"
"""The change-log id under which each audit run is recorded."""

TOLD_ROLES = ("ciso", "security")
REACHED = frozenset({"success", "inactive"})
"""Deployment states that mean the code ran in production (inactive: superseded later)."""


@dataclass(frozen=True)
class Finding:
    """One prohibited practice seen: what, where, about what (`subject`), and why."""

    practice: str
    service: str
    subject: str
    detail: str
    change_id: str | None = None
    source: str = "change log"

    @property
    def finding_id(self) -> str:
        """Stable across runs: the same practice on the same subject is one finding."""
        digest = hashlib.sha256(f"{self.practice}|{self.service}|{self.subject}".encode())
        return f"F-{digest.hexdigest()[:12].upper()}"


@dataclass
class AuditResult:
    """What one audit run saw and recorded."""

    findings: list[Finding] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Documented:
    """What the change log says reached production for one service."""

    versions: dict[str, list[tuple[datetime, str]]]
    """version -> (when, change id) of each deployment or rollback to it."""
    shas: dict[str, str]
    """commit -> change id, from the pull requests the gates read."""
    deployed: set[str]
    """Changes that started a production deployment."""


def documented(a: Adapters, service: str) -> Documented:
    """The service's deployments and rollbacks as the change log recorded them."""
    versions: dict[str, list[tuple[datetime, str]]] = {}
    shas: dict[str, str] = {}
    deployed: set[str] = set()
    for change in a.change_log.changes():
        if change.service != service:
            continue
        for event in a.change_log.events(change.change_id):
            if event.type == EventType.DEPLOYMENT_STARTED:
                deployed.add(change.change_id)
                version = payload_of(event, DeploymentStarted).version
                versions.setdefault(version, []).append((event.at, change.change_id))
            elif event.type == EventType.ROLLBACK_STARTED:
                to = payload_of(event, RollbackStarted).to_version
                versions.setdefault(to, []).append((event.at, change.change_id))
            elif event.type == EventType.ROLLBACK_SUCCEEDED:
                to = payload_of(event, RollbackFinished).to_version
                versions.setdefault(to, []).append((event.at, change.change_id))
            elif event.type == EventType.CODE_HOST_READ:
                shas[payload_of(event, CodeHostRead).head_sha] = change.change_id
    return Documented(versions, shas, deployed)


def deployer_findings(a: Adapters, name: str, service: Service, known: Documented,
                      since: datetime) -> tuple[list[Finding], int]:
    """Production deploys in the deploy command's record that no change recorded."""
    if service.deploy_record is None:
        return [], 0
    path = Path(service.deploy_record.format(var_dir=a.settings.var_dir))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return [], 0
    found, checked = [], 0
    slack = timedelta(minutes=5)
    for number, line in enumerate(lines, 1):
        try:
            entry: dict[str, Any] = json.loads(line)
            at = datetime.fromisoformat(str(entry["deployed_at"]))
            version, environment = str(entry["version"]), str(entry["environment"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}: line {number}: not a deploy record "
                             "(environment, version, deployed_at)") from None
        if environment != "production" or at < since:
            continue
        checked += 1
        if version == service.baseline_version:
            continue
        if any(when <= at + slack for when, _ in known.versions.get(version, [])):
            continue
        found.append(Finding("undocumented_change", name, f"deploy-record:{at.isoformat()}",
                             f"{version} was deployed to production at {at:%Y-%m-%d %H:%M} "
                             "UTC by the deploy command, and no change recorded it",
                             source=str(path)))
    return found, checked


def shared_approvers(a: Adapters, reviews: list[Review]) -> set[str]:
    """Logins of shared accounts (by the roster) that approved."""
    roster = a.config.roster
    return {r.reviewer for r in reviews if r.state == "APPROVED"
            and (person := roster.by_github_login(r.reviewer)) and person.shared_account}


def named_change(text: str, changes: set[str]) -> str | None:
    """The deployed change whose id appears in `text` as a whole word (CHG-10 is not CHG-101)."""
    return next((c for c in sorted(changes)
                 if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text)), None)


def _deployment_findings(a: Adapters, name: str, service: Service, dep: Deployment,
                         known: Documented) -> list[Finding]:
    host = a.code_host
    assert host is not None and service.repository is not None
    repo, subject = service.repository, f"deployment:{dep.id}"
    found: list[Finding] = []
    person = a.config.roster.by_github_login(dep.creator)
    change_id = known.shas.get(dep.sha) or named_change(f"{dep.description or ''} {dep.ref}",
                                                        known.deployed)
    where = f"deployment {dep.id} of {dep.sha[:7]} ({dep.created_at:%Y-%m-%d %H:%M} UTC)"
    if person is not None and person.shared_account:
        found.append(Finding("shared_account", name, f"{subject}:creator",
                             f"{where} was made by shared account {dep.creator}",
                             change_id, "GitHub deployments"))
    if change_id is None:
        found.append(Finding("undocumented_change", name, subject,
                             f"{where} belongs to no change in the change log", None,
                             "GitHub deployments"))
    numbers = host.pull_requests_for_commit(repo, dep.sha)
    base = "main"
    if not numbers:
        found.append(Finding("no_code_review", name, subject,
                             f"{where}: the commit came from no pull request", change_id,
                             "GitHub deployments"))
    else:
        pr = host.pull_request(repo, numbers[0])
        base = pr.base_branch
        change = a.change_log.record(change_id) if change_id else None
        author = change.author if change else None
        review = host_code_review_gate(author, pr, a.config.policy, a.config.roster)
        if review.status is not GateStatus.PASSED:
            found.append(Finding("no_code_review", name, subject,
                                 f"{where}: {review.reason}", change_id, "GitHub deployments"))
        for login in sorted(shared_approvers(a, pr.reviews)):
            found.append(Finding("shared_account", name, f"{pr.repo}#{pr.number}:{login}",
                                 f"{pr.repo}#{pr.number}, deployed as {where}, was approved "
                                 f"by shared account {login}", change_id,
                                 "GitHub pull requests"))
    required, origin = required_checks(host.required_checks(repo, base),
                                       service.required_checks)
    ci = host_ci_gate(required, origin, host.check_runs(repo, dep.sha), dep.sha)
    if ci.status is not GateStatus.PASSED:
        found.append(Finding("ci_bypass", name, subject, f"{where}: {ci.reason}",
                             change_id, "GitHub deployments"))
    return found


@ticket_task("audit-code-host")
def code_host_findings(a: Adapters, name: str, service: Service, known: Documented,
                       since: datetime) -> tuple[list[Finding], int]:
    """The code host's production deployments of the service, each held to section 6."""
    if a.code_host is None or service.repository is None:
        return [], 0
    deployments = [d for d in a.code_host.deployments(
        service.repository, service.production_environment, since) if d.state in REACHED]
    found = [f for dep in deployments
             for f in _deployment_findings(a, name, service, dep, known)]
    return found, len(deployments)


def shared_approval_findings(a: Adapters) -> list[Finding]:
    """Approvals the change log holds for people the roster marks as shared accounts."""
    roster, found = a.config.roster, []
    for change in a.change_log.changes():
        for event in a.change_log.events(change.change_id):
            if event.type != EventType.APPROVAL_RECORDED:
                continue
            decided = payload_of(event, Decided)
            person = roster.get(decided.person_id)
            if person and person.shared_account:
                found.append(Finding(
                    "shared_account", change.service or "-", f"approval:{event.seq}",
                    f"{change.change_id}: approval as {decided.role} recorded "
                    f"for shared account {person.id}", change.change_id))
    return found


def credential_findings(a: Adapters, name: str, service: Service, known: Documented,
                        since: datetime) -> tuple[list[Finding], int]:
    """Production secrets in, or production references from, other environments' config."""
    if not service.config_files:
        return [], 0
    configs = {env: read_env_file(a.settings.config_dir / path)
               for env, path in service.config_files.items()}
    return [Finding("production_credentials_outside_production", name,
                    f"{f.kind}:{f.environment}:{','.join(f.names)}", f.reason,
                    source="config_files")
            for f in find_production_credentials(configs, key=os.urandom(32))], len(configs)


Check = Callable[[Adapters, str, Service, Documented, datetime], tuple[list[Finding], int]]
SOURCES: tuple[tuple[str, Check], ...] = (
    ("deploy record", deployer_findings), ("code host", code_host_findings),
    ("config files", credential_findings))
"""Each source of findings per service: what it is called in a problem, and its check."""


def record_finding(a: Adapters, finding: Finding) -> bool:
    """Record the finding once; the first time, tell the CISO and Security. True if new."""
    finding_id = finding.finding_id
    if a.change_log.record(finding_id) is not None:
        return False
    described = {p.id: p.description for p in a.config.policy.prohibited_practices}
    description = described.get(finding.practice, PRACTICES[finding.practice])
    record(a, finding_id, EventType.PRACTICE_FINDING, SYSTEM, finding_id=finding_id,
           practice=finding.practice, description=description,
           service=finding.service, related_change=finding.change_id, detail=finding.detail,
           source=finding.source)
    told = [p.id for p in a.config.roster.people.values()
            if p.roles & set(TOLD_ROLES) and not p.shared_account]
    notify(a, told, Notice(
        to="", kind="practice-finding", change_id=finding.change_id,
        subject=f"Prohibited practice {finding.practice} ({finding.service}) {finding_id}",
        body=f"{description}:\n{finding.detail}\nsource: {finding.source}"), stream=finding_id)
    return True


def audit(a: Adapters, lookback: timedelta) -> AuditResult:
    """Run every check over every service; record new findings and the run itself."""
    result = AuditResult()
    since = a.now() - lookback
    for name, service in sorted(a.config.services.services.items()):
        known = documented(a, name)
        for source, check in SOURCES:
            try:
                found, checked = check(a, name, service, known, since)
            except Exception as exc:  # noqa: BLE001 - reported, and the run fails at the end
                result.problems.append(f"{name}: {source}: {exc}")
                continue
            result.findings += found
            result.checked[f"{name} {source}"] = checked
    result.findings += shared_approval_findings(a)
    result.new = [f.finding_id for f in result.findings if record_finding(a, f)]
    record(a, AUDIT_STREAM, EventType.PRACTICES_AUDITED, SYSTEM, since=since.isoformat(),
           checked=result.checked, findings=[f.finding_id for f in result.findings],
           new=result.new, problems=result.problems)
    return result
