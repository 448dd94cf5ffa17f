"""The code-review, CI and SAST gates judged on the code host's word (domain/host_gates)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from domain.code_host import CheckRun, CodeScan, PullRequest, Review, ScanAlert
from domain.host_gates import (
    HostEvidence,
    host_ci_gate,
    host_code_review_gate,
    host_sast_gate,
    linked_pull_request,
)
from domain.models import CodeReviewEvidence, GateStatus, Roster, SastEvidence, SastWaiver
from domain.policy import Policy
from tests.unit.conftest import good_evidence, make_change, utc

HEAD, OLD = "a" * 40, "b" * 40
PASSED, FAILED, UNKNOWN = GateStatus.PASSED, GateStatus.FAILED, GateStatus.UNKNOWN
NOW = utc(2026, 11, 26, 12)


def pr(*reviews: tuple[str, str, str], author: str = "alice-m") -> PullRequest:
    return PullRequest(repo="example/sample", number=7, url="https://github.com/x/pull/7",
                       author=author, title="t", head_sha=HEAD, base_branch="main",
                       merged=False, merge_commit_sha=None, changed_paths=["src/a.py"],
                       reviews=[Review(reviewer=who, state=state, commit_sha=sha,
                                       submitted_at=NOW) for who, state, sha in reviews])


# (reviews, status, reason fragment)
REVIEWS: list[tuple[list[tuple[str, str, str]], GateStatus, str]] = [
    ([("erin-lead", "APPROVED", HEAD), ("bob-n", "APPROVED", HEAD)], PASSED,
     "2 approval(s) counted (erin, bob), 1 senior (erin)"),
    ([("erin-lead", "APPROVED", OLD), ("bob-n", "APPROVED", HEAD)], FAILED,
     "erin-lead approved an earlier commit bbbbbbb, not aaaaaaa"),
    ([("erin-lead", "APPROVED", HEAD), ("deploy-bot", "APPROVED", HEAD)], FAILED,
     "deploy-bot is a shared account"),
    ([("erin-lead", "APPROVED", HEAD), ("alice-m", "APPROVED", HEAD)], FAILED,
     "alice-m is the author"),
    ([("erin-lead", "APPROVED", HEAD), ("stranger", "APPROVED", HEAD)], FAILED,
     "stranger is not in the roster (github_login)"),
    ([("bob-n", "APPROVED", HEAD), ("oscar-oncall", "APPROVED", HEAD)], FAILED,
     "needs 2 approval(s), 1 senior"),
    ([("erin-lead", "APPROVED", HEAD), ("bob-n", "APPROVED", HEAD),
      ("sam-sec", "CHANGES_REQUESTED", HEAD)], FAILED, "sam-sec requested changes"),
    # the latest decision counts: an approval after changes requested; a dismissal
    ([("sam-sec", "CHANGES_REQUESTED", OLD), ("sam-sec", "APPROVED", HEAD),
      ("bob-n", "APPROVED", HEAD), ("bob-n", "COMMENTED", HEAD)], PASSED,
     "2 approval(s) counted (sam, bob)"),
    ([("erin-lead", "APPROVED", HEAD), ("erin-lead", "DISMISSED", HEAD),
      ("bob-n", "APPROVED", HEAD)], FAILED, "1 approval(s) counted (bob)"),
    ([("ERIN-LEAD", "APPROVED", HEAD), ("bob-n", "APPROVED", HEAD)], PASSED, "(erin, bob)"),
]


def test_a_review_by_who_committed_to_the_pull_request_does_not_count(
        policy: Policy, roster: Roster) -> None:
    pull = pr(("erin-lead", "APPROVED", HEAD), ("bob-n", "APPROVED", HEAD)).model_copy(
        update={"commit_logins": ["alice-m", "Erin-Lead"]})
    result = host_code_review_gate("alice", pull, policy, roster)
    assert result.status is FAILED
    assert "erin-lead authored or committed commits of the pull request" in result.reason


@pytest.mark.parametrize(("reviews", "status", "reason"), REVIEWS)
def test_code_review_counts_approvals_on_the_final_commit(
        reviews: list[tuple[str, str, str]], status: GateStatus, reason: str, policy: Policy,
        roster: Roster) -> None:
    result = host_code_review_gate("alice", pr(*reviews), policy, roster)
    assert (result.status, result.gate) == (status, "code_review")
    assert reason in result.reason


def run(name: str, status: str = "completed", conclusion: str | None = "success") -> CheckRun:
    return CheckRun(name=name, status=status, conclusion=conclusion, url=None)


@pytest.mark.parametrize(("required", "runs", "status", "reason"), [
    (["tests", "lint"], [run("tests"), run("lint"), run("extra", conclusion="failure")],
     PASSED, "required checks succeeded on aaaaaaa (tests, lint, from branch protection)"),
    (["tests"], [], UNKNOWN, "tests has no run"),
    (["tests"], [run("tests", "in_progress", None)], UNKNOWN, "tests is in_progress"),
    (["tests"], [run("tests", conclusion="skipped")], FAILED, "tests ended skipped"),
    (["tests"], [run("tests", conclusion="failure")], FAILED, "tests ended failure"),
    ([], [run("tests")], UNKNOWN, "no required checks are known"),
])
def test_ci_needs_every_required_check_green(required: list[str], runs: list[CheckRun],
                                             status: GateStatus, reason: str) -> None:
    result = host_ci_gate(required, "branch protection", runs, HEAD)
    assert result.status is status and reason in result.reason


def alert(number: int, severity: str, state: str = "open") -> ScanAlert:
    return ScanAlert(number=number, rule_id="py/sql-injection", severity=severity, state=state,
                     tool="CodeQL", path="src/db.py", url="")


def evidence(*alerts: ScanAlert, analysed: bool = True) -> HostEvidence:
    return HostEvidence(pull_request=pr(), required_checks=[], required_from="-",
                        check_runs=[], scan=CodeScan(analysed=analysed, alerts=list(alerts)),
                        scan_source="code scanning")


def waiver(**overrides: Any) -> SastWaiver:
    values: dict[str, Any] = {"finding": "#3", "approved_by": "sam", "expires": date(2026, 12, 31),
                              "reason": "not reachable: input is a constant"}
    values.update(overrides)
    return SastWaiver(**values)


@pytest.mark.parametrize(("alerts", "waivers", "analysed", "status", "reason", "applied"), [
    ([alert(1, "medium"), alert(2, "high", "dismissed")], [], True, PASSED,
     "no open critical/high findings in code scanning of aaaaaaa", 0),
    ([], [], False, UNKNOWN, "commit aaaaaaa was not analysed", 0),
    ([alert(3, "critical")], [], True, FAILED, "#3 critical py/sql-injection in src/db.py", 0),
    ([alert(3, "error")], [], True, FAILED, "#3 error", 0),
    ([alert(3, "high")], [waiver()], True, PASSED, "#3 high py/sql-injection in src/db.py "
     "waived by sam until 2026-12-31", 1),
    ([alert(3, "high")], [waiver(finding="py/sql-injection@src/db.py")], True, PASSED,
     "waived by sam", 1),
    ([alert(3, "high")], [waiver(expires=date(2026, 11, 25))], True, FAILED,
     "waiver refused: it expired on 2026-11-25", 0),
    ([alert(3, "high")], [waiver(approved_by="bob")], True, FAILED,
     "waiver refused: bob holds no security role", 0),
    ([alert(3, "high")], [waiver(approved_by="alice")], True, FAILED,
     "waiver refused: alice holds no security role", 0),
    ([alert(3, "high")], [waiver(finding="#4")], True, FAILED, "#3 high", 0),
])
def test_sast_blocks_open_findings_unless_validly_waived(
        alerts: list[ScanAlert], waivers: list[SastWaiver], analysed: bool, status: GateStatus,
        reason: str, applied: int, policy: Policy, roster: Roster) -> None:
    change = make_change(author="alice", evidence=good_evidence(
        sast=SastEvidence(waivers=waivers)))
    result, used = host_sast_gate(change, evidence(*alerts, analysed=analysed), policy, roster,
                                  NOW)
    assert result.status is status and reason in result.reason, result.reason
    assert len(used) == applied


@pytest.mark.parametrize(("review", "expected"), [
    (CodeReviewEvidence(pull_request="https://github.com/example/sample/pull/12"),
     ("example/sample", 12)),
    (CodeReviewEvidence(url="https://ghe.example.com/org/svc/pull/3/"), ("org/svc", 3)),
    (CodeReviewEvidence(url="https://git.example.com/sample/merge_requests/3"), None),
    (None, None),
])
def test_the_linked_pull_request_is_read_from_the_ticket(
        review: CodeReviewEvidence | None, expected: tuple[str, int] | None) -> None:
    change = make_change(evidence=good_evidence(code_review=review))
    assert linked_pull_request(change) == expected
