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

The change log is read once (`ChangeLog.deployment_events`) for every service; the rules
are `domain.practices`'. Each finding has a stable id from what it is about, is recorded
once as a `practice_finding` record of its own, and its first recording notifies the CISO
and Security.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.credentials import find_production_credentials
from domain.events import EventType
from domain.models import Notice
from domain.practices import (
    PRACTICES,
    REACHED,
    Finding,
    History,
    HostDeployment,
    credential_findings,
    deploy_record_findings,
    host_deployment_findings,
    production_history,
    shared_approval_findings,
)
from domain.services import Service
from integrations.env_files import read_env_file
from integrations.factory import Adapters
from tasks.common import SYSTEM, record
from tasks.notices import notify
from tasks.tickets import ticket_task

AUDIT_STREAM = "PRACTICES-AUDIT"
"""The change-log id under which each audit run is recorded."""

TOLD_ROLES = ("ciso", "security")


@dataclass
class AuditResult:
    """What one audit run saw and recorded."""

    findings: list[Finding] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def deployer_findings(a: Adapters, name: str, service: Service, history: History,
                      since: datetime) -> tuple[list[Finding], int]:
    """Production deploys in the deploy command's record that no change recorded."""
    if service.deploy_record is None:
        return [], 0
    where = service.deploy_record.format(var_dir=a.settings.var_dir)
    entries = a.deploy_records.entries(where)
    if entries is None:
        return [], 0
    return deploy_record_findings(name, service.baseline_version, entries, where,
                                  history.of(name), since)


@ticket_task("audit-code-host")
def code_host_findings(a: Adapters, name: str, service: Service, history: History,
                       since: datetime) -> tuple[list[Finding], int]:
    """The code host's production deployments of the service, each held to section 6."""
    host, repo = a.code_host, service.repository
    if host is None or repo is None:
        return [], 0
    found: list[Finding] = []
    deployments = [d for d in host.deployments(repo, service.production_environment, since)
                   if d.state in REACHED]
    for dep in deployments:
        numbers = host.pull_requests_for_commit(repo, dep.sha)
        pr = host.pull_request(repo, numbers[0]) if numbers else None
        seen = HostDeployment(dep, pr, host.required_checks(repo, pr.base_branch if pr
                                                                 else "main"),
                              host.check_runs(repo, dep.sha))
        found += host_deployment_findings(name, service.required_checks, seen,
                                          history.of(name), history.authors,
                                          a.config.policy, a.config.roster)
    return found, len(deployments)


def config_file_findings(a: Adapters, name: str, service: Service, history: History,
                         since: datetime) -> tuple[list[Finding], int]:
    """Production secrets in, or production references from, other environments' config."""
    if not service.config_files:
        return [], 0
    configs = {env: read_env_file(a.settings.config_dir / path)
               for env, path in service.config_files.items()}
    return credential_findings(name, find_production_credentials(
        configs, key=os.urandom(32))), len(configs)


Check = Callable[[Adapters, str, Service, History, datetime], tuple[list[Finding], int]]
SOURCES: tuple[tuple[str, Check], ...] = (
    ("deploy record", deployer_findings), ("code host", code_host_findings),
    ("config files", config_file_findings))
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
    """Run every check over every service; record new findings and the run itself.

    The change log is read once, whole: what documents a deployment in the window may
    have been recorded before it (the gates read a pull request days before it deploys).
    """
    result = AuditResult()
    since = a.now() - lookback
    history = production_history(a.change_log.deployment_events())
    for name, service in sorted(a.config.services.services.items()):
        for source, check in SOURCES:
            try:
                found, checked = check(a, name, service, history, since)
            except Exception as exc:  # noqa: BLE001 - reported, and the run fails at the end
                result.problems.append(f"{name}: {source}: {exc}")
                continue
            result.findings += found
            result.checked[f"{name} {source}"] = checked
    result.findings += shared_approval_findings(history.approvals, a.config.roster)
    result.new = [f.finding_id for f in result.findings if record_finding(a, f)]
    record(a, AUDIT_STREAM, EventType.PRACTICES_AUDITED, SYSTEM, since=since.isoformat(),
           checked=result.checked, findings=[f.finding_id for f in result.findings],
           new=result.new, problems=result.problems)
    return result
