"""Reading the code host for a change: its pull request, checks and scans.

With `CHANGEFLOW_CODE_HOST=github` the code-review, CI and SAST gates are judged on
what the host says about the pull request the ticket links, not on the ticket's own
claims, and the pull request's changed paths join the ticket's (so a change touching
authentication code asks Security even when its ticket did not say so). Each read is a
task retried on `CodeHostUnavailable`, like the ticket system's.
"""

from __future__ import annotations

import json
from pathlib import Path

from domain.code_host import PullRequest
from domain.host_gates import (
    HOST_GATES,
    HostEvidence,
    joined_with_pull_request,
    linked_pull_request,
    required_checks,
)
from domain.models import ChangeRequest
from domain.sarif import scan_from_sarif
from domain.standard import required_gates
from integrations.factory import Adapters
from integrations.ports import CodeHostError, CodeHostUnavailable
from tasks.tickets import ticket_task


def host_problem(a: Adapters, change: ChangeRequest) -> str | None:
    """Why the change's pull request cannot be located on the host, or None."""
    service = a.config.services.services.get(change.service)
    linked = linked_pull_request(change)
    if linked is None:
        return ("evidence.code_review.pull_request: link the change's pull request "
                "(https://github.com/OWNER/REPO/pull/N)")
    if service is None or service.repository is None:
        return (f"services.yaml: services.{change.service}.repository is not set, so no "
                "pull request can be checked against it")
    if linked[0].lower() != service.repository.lower():
        return (f"evidence.code_review.pull_request: {linked[0]}#{linked[1]} is not in "
                f"{change.service}'s repository {service.repository}")
    return None


@ticket_task("read-pull-request")
def read_pull_request(a: Adapters, change: ChangeRequest) -> PullRequest:
    """The pull request the change links (call `host_problem` first)."""
    assert a.code_host is not None
    linked = linked_pull_request(change)
    assert linked is not None
    return a.code_host.pull_request(*linked)


@ticket_task("read-gate-evidence")
def read_host_evidence(a: Adapters, change: ChangeRequest) -> HostEvidence:
    """What the code host says about the change's gates.

    The pull request, its required checks and their runs, the scan of its head, and the
    commit the version to deploy names (`services.<s>.version_ref`).

    Required checks are branch protection's; when it lists none, the catalog's
    `required_checks`. When code scanning never analysed the head commit, a SARIF file
    attached to the change (`evidence.sast.sarif`, beside the tickets) is read instead.

    Raises:
        CodeHostError: the host refused (a missing pull request, no access).
        ValueError: the attached SARIF file is malformed (the message names where).
    """
    host = a.code_host
    assert host is not None
    pr = read_pull_request.fn(a, change)
    service = a.config.services.services[change.service]
    required, required_from = required_checks(host.required_checks(pr.repo, pr.base_branch),
                                              service.required_checks)
    runs = host.check_runs(pr.repo, pr.head_sha)
    scan = host.code_scan(pr.repo, pr.head_sha, f"refs/pull/{pr.number}/head")
    source = "code scanning"
    sarif = change.evidence.sast.sarif if change.evidence.sast else None
    if not scan.analysed and sarif:
        scan, source = scan_from_sarif(_load_sarif(a, sarif)), f"SARIF file {sarif}"
    ref = service.version_ref.format(version=change.version)
    try:
        version_commit: str | None = host.commit_of(pr.repo, ref)
    except CodeHostUnavailable:
        raise
    except CodeHostError:
        version_commit = None
    return HostEvidence(pull_request=pr, required_checks=required,
                        required_from=required_from, check_runs=runs, scan=scan,
                        scan_source=source, version_ref=ref, version_commit=version_commit)


def _load_sarif(a: Adapters, name: str) -> object:
    folder = a.settings.resolved_tickets_dir.resolve()
    path = (folder / name).resolve()
    if folder not in path.parents:
        raise ValueError(f"evidence.sast.sarif: {name!r} is outside the tickets folder")
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise ValueError(f"evidence.sast.sarif: {name!r} is not a file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"evidence.sast.sarif: {name!r} is not JSON: {exc}") from None


def needs_host(a: Adapters, change: ChangeRequest) -> bool:
    """A code host is configured and the change has a gate it judges (not bypassed)."""
    if a.code_host is None:
        return False
    spec = a.config.policy.categories[change.category]
    gates = set(required_gates(change, a.config.policy)) - set(spec.bypassable_gates)
    return bool(gates.intersection(HOST_GATES))


def with_pull_request(a: Adapters, change: ChangeRequest) -> ChangeRequest | list[str]:
    """At submit: the change with its pull request's paths and writers, or the problems.

    The paths decide who must approve (Security for authentication, data access or
    encryption code), so they are taken from the host, not only from the ticket. The
    pull request's author and its commits' authors and committers (by `github_login`)
    become the change's `contributors`: none of them may approve it.
    """
    if not needs_host(a, change):
        return change
    problem = host_problem(a, change)
    if problem is not None:
        return [problem]
    try:
        pr = read_pull_request(a, change)
    except CodeHostError as exc:
        return [f"evidence.code_review.pull_request: cannot be read: {exc}"]
    return joined_with_pull_request(change, pr.changed_paths, pr.writers, a.config.roster)


def gate_evidence(a: Adapters, change: ChangeRequest) -> HostEvidence | str:
    """The host's evidence for the change's gates, or why it cannot be had (blocks)."""
    problem = host_problem(a, change)
    if problem is not None:
        return problem
    try:
        return read_host_evidence(a, change)
    except (CodeHostError, ValueError) as exc:
        return f"cannot read the code host: {exc}"
