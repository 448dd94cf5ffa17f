"""Policy section 6's prohibited practices, as rules over facts already read.

What reached production (the deploy command's record, the code host's deployments) is
compared with what the change log documents (`production_history`); approvals the log
holds are held to the roster; environments' configuration findings become findings.
Every function here takes plain facts and returns `Finding`s: reading the facts and
recording the findings is `tasks.practices`' work.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from domain.code_host import CheckRun, Deployment, PullRequest
from domain.credentials import CredentialFinding
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
from domain.models import ChangeEvent, GateStatus, Roster
from domain.policy import Policy

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

DEPLOYMENT_EVENTS = frozenset({
    EventType.DEPLOYMENT_STARTED, EventType.ROLLBACK_STARTED, EventType.ROLLBACK_SUCCEEDED,
    EventType.CODE_HOST_READ, EventType.APPROVAL_RECORDED})
"""The event types the audit's rules read: what reached production, the commits the gates
read, and the approvals given."""

SUBMISSIONS = frozenset({EventType.CHANGE_SUBMITTED, EventType.VALIDATION_FAILED})
"""The event types that name a change's service and author (the last one's, as its record)."""

REACHED = frozenset({"success", "inactive"})
"""Code-host deployment states that mean the code ran in production (inactive: superseded)."""

DEPLOY_SLACK = timedelta(minutes=5)
"""How long after a documented deployment (or rollback) its deploy command may record it."""


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
class Documented:
    """What the change log says reached production for one service."""

    versions: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    """version -> (when, change id) of each deployment or rollback to it."""
    shas: dict[str, str] = field(default_factory=dict)
    """commit -> change id, from the pull requests the gates read."""
    deployed: set[str] = field(default_factory=set)
    """Changes that started a production deployment."""


@dataclass(frozen=True)
class Approval:
    """An approval the change log holds, with the change's service."""

    change_id: str
    service: str | None
    seq: int
    decided: Decided


@dataclass(frozen=True)
class History:
    """The change log's production facts, by service, read in one pass."""

    services: dict[str, Documented]
    authors: dict[str, str]
    """change id -> its author (roster id), as its record says."""
    approvals: list[Approval]
    """In the order of the changes' opening, then of the log."""

    def of(self, service: str) -> Documented:
        """What the log documents for `service` (nothing, if it has no changes)."""
        return self.services.get(service, Documented())


def production_history(events: Iterable[ChangeEvent]) -> History:
    """Sort the events of `DEPLOYMENT_EVENTS` by their change's service.

    Args:
        events: in chain order, with the submissions of the changes they belong to (what
            `ChangeLog.deployment_events` returns); other events are ignored.
    """
    events = list(events)
    named: dict[str, dict[str, str]] = {}
    opened: dict[str, datetime] = {}
    for event in events:
        if event.type in SUBMISSIONS:
            opened.setdefault(event.change_id, event.at)
            said = named.setdefault(event.change_id, {})
            said.update({k: v for k in ("service", "author")
                         if isinstance(v := event.payload.get(k), str)})
    services: dict[str, Documented] = {}
    approvals: list[Approval] = []
    for event in events:
        cid = event.change_id
        service = named.get(cid, {}).get("service")
        if event.type == EventType.APPROVAL_RECORDED:
            approvals.append(Approval(cid, service, event.seq, payload_of(event, Decided)))
            continue
        if event.type not in DEPLOYMENT_EVENTS or service is None:
            continue
        known = services.setdefault(service, Documented())
        if event.type == EventType.DEPLOYMENT_STARTED:
            known.deployed.add(cid)
            version = payload_of(event, DeploymentStarted).version
            known.versions.setdefault(version, []).append((event.at, cid))
        elif event.type == EventType.ROLLBACK_STARTED:
            to = payload_of(event, RollbackStarted).to_version
            known.versions.setdefault(to, []).append((event.at, cid))
        elif event.type == EventType.ROLLBACK_SUCCEEDED:
            to = payload_of(event, RollbackFinished).to_version
            known.versions.setdefault(to, []).append((event.at, cid))
        else:
            known.shas[payload_of(event, CodeHostRead).head_sha] = cid
    never = datetime.max.replace(tzinfo=UTC)
    approvals.sort(key=lambda a: (opened.get(a.change_id, never), a.change_id, a.seq))
    authors = {cid: said["author"] for cid, said in named.items() if "author" in said}
    return History(services, authors, approvals)


@dataclass(frozen=True)
class DeployEntry:
    """One deploy in a deploy command's own record."""

    environment: str
    version: str
    deployed_at: datetime


def deploy_record_findings(service: str, baseline: str | None, entries: Iterable[DeployEntry],
                           where: str, known: Documented,
                           since: datetime) -> tuple[list[Finding], int]:
    """Production deploys since `since` that no change recorded (nor the baseline).

    A deploy is documented by a change's deployment or rollback to its version at most
    `DEPLOY_SLACK` after it. Returns the findings and how many deploys were checked.
    """
    found, checked = [], 0
    for entry in entries:
        at, version = entry.deployed_at, entry.version
        if entry.environment != "production" or at < since:
            continue
        checked += 1
        if version == baseline:
            continue
        if any(when <= at + DEPLOY_SLACK for when, _ in known.versions.get(version, [])):
            continue
        found.append(Finding("undocumented_change", service, f"deploy-record:{at.isoformat()}",
                             f"{version} was deployed to production at {at:%Y-%m-%d %H:%M} "
                             "UTC by the deploy command, and no change recorded it",
                             source=where))
    return found, checked


@dataclass(frozen=True)
class HostDeployment:
    """A code host's production deployment, with what the host says about its commit."""

    deployment: Deployment
    pull_request: PullRequest | None
    """The first pull request behind the commit; None when it came from none."""
    protected: list[str] | None
    """The checks branch protection requires on the pull request's base (or `main`)."""
    runs: list[CheckRun]
    """The check runs on the deployed commit."""


def named_change(text: str, changes: set[str]) -> str | None:
    """The deployed change whose id appears in `text` as a whole word (CHG-10 is not CHG-101)."""
    return next((c for c in sorted(changes)
                 if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text)), None)


def shared_approvers(roster: Roster, pr: PullRequest) -> set[str]:
    """Logins of shared accounts (by the roster) that approved the pull request."""
    return {r.reviewer for r in pr.reviews if r.state == "APPROVED"
            and (person := roster.by_github_login(r.reviewer)) and person.shared_account}


def host_deployment_findings(service: str, catalog_checks: list[str], seen: HostDeployment,
                             known: Documented, authors: dict[str, str], policy: Policy,
                             roster: Roster) -> list[Finding]:
    """One code-host deployment held to section 6: a change, a review, green checks, a person.

    Args:
        service: the service's name in the catalog.
        catalog_checks: the service's `required_checks`, when branch protection names none.
        seen: the deployment and its commit's facts.
        known: what the change log documents for the service.
        authors: each change's author (`History.authors`).
        policy: the review gate's rules.
        roster: who the logins are.
    """
    dep, pr, source = seen.deployment, seen.pull_request, "GitHub deployments"
    subject, found = f"deployment:{dep.id}", []
    change_id = known.shas.get(dep.sha) or named_change(f"{dep.description or ''} {dep.ref}",
                                                        known.deployed)
    where = f"deployment {dep.id} of {dep.sha[:7]} ({dep.created_at:%Y-%m-%d %H:%M} UTC)"
    person = roster.by_github_login(dep.creator)
    if person is not None and person.shared_account:
        found.append(Finding("shared_account", service, f"{subject}:creator",
                             f"{where} was made by shared account {dep.creator}",
                             change_id, source))
    if change_id is None:
        found.append(Finding("undocumented_change", service, subject,
                             f"{where} belongs to no change in the change log", None, source))
    if pr is None:
        found.append(Finding("no_code_review", service, subject,
                             f"{where}: the commit came from no pull request", change_id,
                             source))
    else:
        author = authors.get(change_id) if change_id else None
        review = host_code_review_gate(author, pr, policy, roster)
        if review.status is not GateStatus.PASSED:
            found.append(Finding("no_code_review", service, subject,
                                 f"{where}: {review.reason}", change_id, source))
        for login in sorted(shared_approvers(roster, pr)):
            found.append(Finding("shared_account", service, f"{pr.repo}#{pr.number}:{login}",
                                 f"{pr.repo}#{pr.number}, deployed as {where}, was approved "
                                 f"by shared account {login}", change_id,
                                 "GitHub pull requests"))
    required, origin = required_checks(seen.protected, catalog_checks)
    ci = host_ci_gate(required, origin, seen.runs, dep.sha)
    if ci.status is not GateStatus.PASSED:
        found.append(Finding("ci_bypass", service, subject, f"{where}: {ci.reason}",
                             change_id, source))
    return found


def shared_approval_findings(approvals: Iterable[Approval], roster: Roster) -> list[Finding]:
    """Approvals the change log holds for people the roster marks as shared accounts."""
    found = []
    for approval in approvals:
        decided = approval.decided
        person = roster.get(decided.person_id)
        if person and person.shared_account:
            found.append(Finding(
                "shared_account", approval.service or "-", f"approval:{approval.seq}",
                f"{approval.change_id}: approval as {decided.role} recorded "
                f"for shared account {person.id}", approval.change_id))
    return found


def credential_findings(service: str, found: Iterable[CredentialFinding]) -> list[Finding]:
    """The credential audit's findings (`domain.credentials`) as prohibited practices."""
    return [Finding("production_credentials_outside_production", service,
                    f"{f.kind}:{f.environment}:{','.join(f.names)}", f.reason,
                    source="config_files")
            for f in found]
