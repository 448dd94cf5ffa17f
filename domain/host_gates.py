"""Policy section 3's code-review, CI and SAST gates, judged on what the code host says.

With a code host configured, a ticket's own claims about reviews, CI and scans are not
evidence: the gates read the pull request behind the change. The rules, each failing
closed:

- code review: approving reviews on the pull request's final commit (an approval given
  before a later push does not count), by people in the roster (`github_login`), none by
  the author or a shared account; at least `min_reviewers`, `min_senior` of them senior;
  a reviewer's latest decision counts, and open "changes requested" blocks;
- CI: every required check (branch protection's, else the catalog's) has a run on the
  final commit that succeeded; a missing or unfinished one is UNKNOWN, any other
  conclusion (skipped included) FAILED;
- SAST: the final commit was analysed (code scanning, or a SARIF file attached to the
  change) and no open finding of a blocking severity remains, unless waived by a valid
  waiver (a security role, not the author, with a reason, not expired).
"""

from __future__ import annotations

import re
from datetime import datetime

from domain.code_host import CheckRun, CodeScan, PullRequest, Review, ScanAlert
from domain.models import (
    ChangeRequest,
    Frozen,
    GateResult,
    GateStatus,
    Roster,
    SastWaiver,
)
from domain.policy import Policy

HOST_GATES = ("code_review", "automated_tests", "security_scan")
"""The gates judged on the code host's word when one is configured."""

DECIDING_STATES = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})
"""Review states that replace a reviewer's earlier decision (a comment does not)."""

WAIVER_ROLES = frozenset({"security", "ciso"})
"""Who may accept a SAST finding."""

SEVERITY_ALIASES = {"error": "high"}
"""A rule severity without a security severity, read as the security severity it is at
least (a scanner's `error` is treated as high: fail closed)."""

PR_URL = re.compile(r"^https?://[^/]+/(?P<repo>[^/\s]+/[^/\s]+)/pull/(?P<number>\d+)/?$")


class HostEvidence(Frozen):
    """What the code host said about a change's pull request, as read at one moment."""

    pull_request: PullRequest
    required_checks: list[str]
    required_from: str
    """Where the required checks came from: "branch protection" or "services.yaml"."""
    check_runs: list[CheckRun]
    scan: CodeScan
    scan_source: str
    """"code scanning", or "SARIF file NAME"."""
    version_ref: str = ""
    """The code host's name for the version to deploy (the catalog's `version_ref`)."""
    version_commit: str | None = None
    """The commit `version_ref` names, or None when the host knows no such ref."""


def deployed_is_reviewed(host: HostEvidence, version: str) -> str | None:
    """Why the version to deploy is not the reviewed code, or None.

    The version must name (as `version_ref`) the pull request's final commit, or its
    merge commit once merged: the commit the reviews, CI and scan were judged on.
    """
    pr = host.pull_request
    reviewed = [pr.head_sha] + ([pr.merge_commit_sha] if pr.merged and pr.merge_commit_sha
                                else [])
    named = " or merge commit ".join(sha[:12] for sha in reviewed)
    if host.version_commit is None:
        return (f"version {version} ({host.version_ref}) is not a tag or commit on "
                f"{pr.repo}, so it cannot be matched with the reviewed final commit {named}")
    if host.version_commit not in reviewed:
        return (f"version {version} ({host.version_ref}) is commit "
                f"{host.version_commit[:12]}, not the reviewed pull request's final commit "
                f"{named}: what is deployed must be what was reviewed")
    return None


def joined_with_pull_request(change: ChangeRequest, paths: list[str], writers: list[str],
                             roster: Roster) -> ChangeRequest:
    """The change with what its pull request says of it.

    The pull request's paths join the change's (they decide who must approve), and the
    roster people behind its writers' logins (`PullRequest.writers`) join its
    `contributors` (none of whom may approve it). Used at submit, at the gates (a later
    push counts) and by the clearance, on what the code host was recorded to say.
    """
    wrote = [p.id for login in writers
             if (p := roster.by_github_login(login)) is not None and p.id != change.author]
    return change.model_copy(update={
        "changed_paths": list(dict.fromkeys([*change.changed_paths, *paths])),
        "contributors": list(dict.fromkeys([*change.contributors, *wrote]))})


def pull_request_ref(url: str | None) -> tuple[str, int] | None:
    """("owner/name", number) from a pull request's web address, or None."""
    match = PR_URL.match((url or "").strip())
    return (match["repo"], int(match["number"])) if match else None


def linked_pull_request(change: ChangeRequest) -> tuple[str, int] | None:
    """The pull request the ticket links: `pull_request`, else a pull-request `url`."""
    review = change.evidence.code_review
    if review is None:
        return None
    return pull_request_ref(review.pull_request) or pull_request_ref(review.url)


def _result(gate: str, status: GateStatus, reason: str) -> GateResult:
    return GateResult(gate=gate, status=status, reason=reason)


def latest_decisions(reviews: list[Review]) -> dict[str, Review]:
    """Each reviewer's latest deciding review (approve, request changes, dismissed)."""
    latest: dict[str, Review] = {}
    for review in reviews:  # oldest first
        if review.state in DECIDING_STATES:
            latest[review.reviewer.lower()] = review
    return latest


def _not_counted(login: str, review: Review, pr: PullRequest, author: str | None,
                 roster: Roster, author_may_review: bool) -> str | None:
    """Why an approving review does not count, or None."""
    person = roster.by_github_login(login)
    if review.commit_sha != pr.head_sha:
        return (f"{login} approved an earlier commit {review.commit_sha[:7] or '(gone)'}, "
                f"not {pr.head_sha[:7]}")
    if person is None:
        return f"{login} is not in the roster (github_login)"
    if person.shared_account:
        return f"{login} is a shared account"
    pr_author = roster.by_github_login(pr.author)
    if (person.id == author or person == pr_author) and not author_may_review:
        return f"{login} is the author"
    if login.lower() in {c.lower() for c in pr.commit_logins} and not author_may_review:
        return f"{login} authored or committed commits of the pull request"
    return None


def host_code_review_gate(author: str | None, pr: PullRequest, policy: Policy,
                          roster: Roster) -> GateResult:
    """Approvals on the pull request's final commit, by counted people (module rules).

    Args:
        author: the change's author (roster id), if a change is known; the pull
            request's own author is never counted either.
        pr: the pull request, with every review.
        policy: how many approvals, how many senior.
        roster: who the logins are.
    """
    gate, rules = "code_review", policy.gates.code_review
    counted: list[str] = []
    seniors: list[str] = []
    excluded: list[str] = []
    blocking: list[str] = []
    for login, review in latest_decisions(pr.reviews).items():
        if review.state == "CHANGES_REQUESTED":
            blocking.append(f"{login} requested changes")
            continue
        if review.state != "APPROVED":
            continue
        why = _not_counted(login, review, pr, author, roster, rules.author_may_review)
        person = roster.by_github_login(login)
        if why is not None:
            excluded.append(why)
        elif person is not None and person.id not in counted:
            counted.append(person.id)
            if person.senior:
                seniors.append(person.id)
    summary = (f"{pr.repo}#{pr.number} at {pr.head_sha[:7]}: {len(counted)} approval(s) "
               f"counted ({', '.join(counted) or 'none'}), {len(seniors)} senior "
               f"({', '.join(seniors) or 'none'})")
    if excluded:
        summary += f"; not counted: {'; '.join(excluded)}"
    if blocking:
        return _result(gate, GateStatus.FAILED, f"{summary}; {'; '.join(blocking)}")
    if len(counted) >= rules.min_reviewers and len(seniors) >= rules.min_senior:
        return _result(gate, GateStatus.PASSED, summary)
    return _result(gate, GateStatus.FAILED, f"needs {rules.min_reviewers} approval(s), "
                                            f"{rules.min_senior} senior: {summary}")


def required_checks(protected: list[str] | None, catalog: list[str]) -> tuple[list[str], str]:
    """The checks a commit must pass, and where that list came from.

    Branch protection's list when it names any, else the catalog's `required_checks`.
    """
    if protected:
        return list(protected), "branch protection"
    return list(catalog), "services.yaml"


def host_ci_gate(required: list[str], required_from: str, runs: list[CheckRun],
                 sha: str) -> GateResult:
    """Every required check succeeded on commit `sha` (`runs` are its check runs)."""
    gate, sha = "automated_tests", sha[:7]
    if not required:
        return _result(gate, GateStatus.UNKNOWN,
                       "no required checks are known: require them in branch protection "
                       "or list required_checks for the service in services.yaml")
    by_name = {run.name: run for run in runs}
    unknown: list[str] = []
    failed: list[str] = []
    for name in required:
        run = by_name.get(name)
        if run is None:
            unknown.append(f"{name} has no run")
        elif run.status != "completed":
            unknown.append(f"{name} is {run.status}")
        elif run.conclusion != "success":
            failed.append(f"{name} ended {run.conclusion}")
    names = ", ".join(required)
    if failed:
        return _result(gate, GateStatus.FAILED, f"required checks on {sha}: "
                                                f"{'; '.join(failed + unknown)}")
    if unknown:
        return _result(gate, GateStatus.UNKNOWN, f"required checks on {sha}: "
                                                 f"{'; '.join(unknown)}")
    return _result(gate, GateStatus.PASSED, f"required checks succeeded on {sha} ({names}, "
                                            f"from {required_from})")


def waiver_problem(waiver: SastWaiver, change: ChangeRequest, roster: Roster,
                   now: datetime) -> str | None:
    """Why `waiver` cannot waive anything, or None when it is valid."""
    person = roster.get(waiver.approved_by)
    if person is None:
        return f"{waiver.approved_by!r} is not in the roster"
    if not person.roles & WAIVER_ROLES:
        return f"{waiver.approved_by} holds no security role ({', '.join(sorted(WAIVER_ROLES))})"
    if person.shared_account:
        return f"{waiver.approved_by} is a shared account"
    if change.by(person.id):
        return f"{waiver.approved_by} wrote the change (its author or a contributor)"
    if waiver.expires < now.date():
        return f"it expired on {waiver.expires.isoformat()}"
    return None


def waives(waiver: SastWaiver, alert: ScanAlert) -> bool:
    """The waiver names this alert: `#12` / `12`, or `rule@path`."""
    named = waiver.finding.strip()
    return named.lstrip("#") == str(alert.number) or named == f"{alert.rule_id}@{alert.path}"


def blocking_severity(alert: ScanAlert, policy: Policy) -> bool:
    """The alert's severity is one the policy blocks on."""
    severity = SEVERITY_ALIASES.get(alert.severity, alert.severity)
    return severity in policy.gates.security_scan.blocking_severities


def host_sast_gate(change: ChangeRequest, evidence: HostEvidence, policy: Policy,
                   roster: Roster, now: datetime) -> tuple[GateResult, list[SastWaiver]]:
    """No open blocking finding on the final commit unless validly waived.

    Returns:
        The gate's result and the waivers that were applied (to be recorded).
    """
    gate, sha = "security_scan", evidence.pull_request.head_sha[:7]
    if not evidence.scan.analysed:
        return _result(gate, GateStatus.UNKNOWN,
                       f"commit {sha} was not analysed ({evidence.scan_source}); attach a "
                       "SARIF file or run code scanning on it"), []
    waivers = change.evidence.sast.waivers if change.evidence.sast else []
    invalid = {id(w): waiver_problem(w, change, roster, now) for w in waivers}
    applied: list[SastWaiver] = []
    open_: list[str] = []
    notes: list[str] = []
    for alert in evidence.scan.alerts:
        if alert.state != "open" or not blocking_severity(alert, policy):
            continue
        named = [w for w in waivers if waives(w, alert)]
        valid = [w for w in named if invalid[id(w)] is None]
        label = f"#{alert.number} {alert.severity} {alert.rule_id}" + (
            f" in {alert.path}" if alert.path else "")
        if valid:
            applied.append(valid[0])
            notes.append(f"{label} waived by {valid[0].approved_by} until "
                         f"{valid[0].expires.isoformat()}")
        else:
            why = "; ".join(f"waiver refused: {invalid[id(w)]}" for w in named)
            open_.append(f"{label}" + (f" ({why})" if why else ""))
    source = f"{evidence.scan_source} of {sha}"
    if open_:
        return _result(gate, GateStatus.FAILED, f"open blocking findings in {source}: "
                                                f"{'; '.join(open_)}"), []
    reason = f"no open {'/'.join(policy.gates.security_scan.blocking_severities)} findings " \
             f"in {source}" + (f"; {'; '.join(notes)}" if notes else "")
    return _result(gate, GateStatus.PASSED, reason), applied
