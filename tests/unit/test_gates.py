from __future__ import annotations

import pytest

from changeflow.stack import TRIAL_SOURCES
from config.loader import Config
from domain.approvals import ApprovalVerdict
from domain.gates import evaluate_gates, gates_block, recorded_gate_gaps, unaccepted_evidence
from domain.models import (
    Category,
    CiEvidence,
    CodeReviewEvidence,
    GateResult,
    GateStatus,
    Roster,
    SastEvidence,
)
from domain.policy import GATES, Policy, SecurityScanGate
from tests.unit.conftest import full_plan, good_evidence, make_change

PENDING = GateStatus.PENDING
PASSED, FAILED, UNKNOWN, BYPASSED = (GateStatus.PASSED, GateStatus.FAILED, GateStatus.UNKNOWN,
                                     GateStatus.BYPASSED)
OK = ApprovalVerdict(satisfied=True, declined=False,
                     approvers={"engineering_lead": "erin", "qa": "quinn"})


def review(*ids: str) -> CodeReviewEvidence:
    return CodeReviewEvidence(reviewers=list(ids))


def gate_of(results: list[GateResult], name: str) -> GateResult:
    (result,) = [r for r in results if r.gate == name]
    return result


# (gate, change overrides, evidence overrides, status, reason)
CASES = [
    ("code_review", {}, {}, PASSED,
     "2 reviewer(s) counted (bob, erin), 1 senior (erin)"),
    ("code_review", {}, {"code_review": None}, UNKNOWN, "no code review evidence"),
    ("code_review", {}, {"code_review": review("bob", "oscar")}, FAILED,
     "needs 2 reviewer(s), 1 senior: 2 reviewer(s) counted (bob, oscar), 0 senior (none)"),
    ("code_review", {}, {"code_review": review("erin")}, FAILED,
     "needs 2 reviewer(s), 1 senior: 1 reviewer(s) counted (erin), 1 senior (erin)"),
    ("code_review", {}, {"code_review": review("erin", "erin")}, FAILED,
     "needs 2 reviewer(s), 1 senior: 1 reviewer(s) counted (erin), 1 senior (erin)"),
    ("code_review", {}, {"code_review": review("alice", "bob")}, FAILED,
     "needs 2 reviewer(s), 1 senior: 1 reviewer(s) counted (bob), 0 senior (none); "
     "not counted: 'alice' is the author"),
    ("code_review", {}, {"code_review": review("deploybot", "zed", "erin")}, FAILED,
     "needs 2 reviewer(s), 1 senior: 1 reviewer(s) counted (erin), 1 senior (erin); "
     "not counted: 'deploybot' is a shared account; 'zed' is not in the roster"),
    ("code_review", {}, {"code_review": review("alice", "bob", "carol")}, PASSED,
     "2 reviewer(s) counted (bob, carol), 1 senior (carol); not counted: 'alice' is the "
     "author"),
    ("automated_tests", {}, {}, PASSED, "CI passed with no failing tests"),
    ("automated_tests", {}, {"ci": CiEvidence(status="passed")}, PASSED,
     "CI passed with no failing tests"),
    ("automated_tests", {}, {"ci": CiEvidence(status="passed", failed_tests=3)}, FAILED,
     "CI passed but reports 3 failing test(s)"),
    ("automated_tests", {}, {"ci": CiEvidence(status="failed", failed_tests=0)}, FAILED,
     "CI status is 'failed', not 'passed'"),
    ("automated_tests", {}, {"ci": CiEvidence(status="cancelled")}, FAILED,
     "CI status is 'cancelled', not 'passed'"),
    ("automated_tests", {}, {"ci": CiEvidence(status="running")}, UNKNOWN,
     "CI has not finished (status 'running')"),
    ("automated_tests", {}, {"ci": CiEvidence()}, UNKNOWN, "no CI result"),
    ("automated_tests", {}, {"ci": None}, UNKNOWN, "no CI result"),
    ("security_scan", {}, {}, PASSED, "no open critical/high SAST findings"),
    ("security_scan", {}, {"sast": SastEvidence(critical=1, high=2)}, FAILED,
     "open SAST findings: 1 critical, 2 high"),
    ("security_scan", {}, {"sast": SastEvidence(critical=0, high=4)}, FAILED,
     "open SAST findings: 4 high"),
    ("security_scan", {}, {"sast": SastEvidence(critical=0)}, UNKNOWN,
     "SAST result has no count of high findings"),
    ("security_scan", {}, {"sast": SastEvidence(high=1)}, FAILED,
     "open SAST findings: 1 high"),
    ("security_scan", {}, {"sast": None}, UNKNOWN, "no SAST result"),
    ("staging_validation", {}, {}, PASSED, "staging validation passed"),
    ("staging_validation", {}, {"staging_passed": False}, FAILED, "staging validation failed"),
    ("staging_validation", {}, {"staging_passed": None}, PENDING,
     "staging has not run yet"),
    ("rollback_plan", {}, {}, PASSED, "rollback plan complete"),
    ("rollback_plan", {"rollback_plan": full_plan(steps=" ", owner="deploybot")}, {}, FAILED,
     "rollback plan incomplete: steps, owner ('deploybot' is a shared account)"),
    ("approval", {}, {}, PASSED, "approved (engineering_lead: erin, qa: quinn)"),
]


@pytest.fixture
def policy(config: Config) -> Policy:
    """The shipped policy for a trial: these tests judge the rules on the ticket's claims."""
    gates = config.policy.gates.model_copy(update={"evidence_sources": TRIAL_SOURCES})
    return config.policy.model_copy(update={"gates": gates})


def test_the_shipped_policy_refuses_the_tickets_claims_and_says_how_to_fix_it(
        config: Config, roster: Roster) -> None:
    shipped = config.policy
    results = {g.gate: g for g in evaluate_gates(make_change(), shipped, roster, OK)}
    for gate in ("code_review", "automated_tests", "security_scan"):
        assert (results[gate].status, results[gate].source) == (FAILED, "ticket")
        assert results[gate].reason.startswith(
            f"the policy does not accept evidence from the ticket for {gate} "
            f"(gates.evidence_sources.{gate}: code_host); configure the code host "
            "(CHANGEFLOW_CODE_HOST=github) (the ticket's evidence said: ")
    assert {g: r.source for g, r in results.items() if r.status is PASSED} == {
        "staging_validation": "changeflow", "rollback_plan": "changeflow",
        "approval": "changeflow"}
    assert unaccepted_evidence(make_change(), shipped, code_host=False) == [
        f"{gate}: the policy does not accept evidence from the ticket for {gate} "
        f"(gates.evidence_sources.{gate}: code_host); configure the code host "
        "(CHANGEFLOW_CODE_HOST=github)"
        for gate in ("code_review", "automated_tests", "security_scan")]
    assert unaccepted_evidence(make_change(), shipped, code_host=True) == []
    emergency = make_change(category=Category.EMERGENCY)  # its code review is bypassable
    assert [p.split(":")[0] for p in unaccepted_evidence(emergency, shipped, False)] == [
        "automated_tests", "security_scan"]


def test_a_trial_marks_what_the_ticket_claimed(policy: Policy, roster: Roster) -> None:
    results = {g.gate: g for g in evaluate_gates(make_change(), policy, roster, OK)}
    assert {g: r.source for g, r in results.items()} == {
        "code_review": "ticket", "automated_tests": "ticket", "security_scan": "ticket",
        "staging_validation": "changeflow", "rollback_plan": "changeflow",
        "approval": "changeflow"}
    assert all(r.status is PASSED for r in results.values())


@pytest.mark.parametrize(("gate", "overrides", "evidence", "status", "reason"),
                         [pytest.param(*c, id=f"{c[0]}-{i}") for i, c in enumerate(CASES)])
def test_gate(policy, roster, gate, overrides, evidence, status, reason):
    change = make_change(evidence=good_evidence(**evidence), **overrides)
    result = gate_of(evaluate_gates(change, policy, roster, OK), gate)
    assert (result.status, result.reason) == (status, reason)
    assert result.blocks is (status in (FAILED, UNKNOWN, PENDING))


@pytest.mark.parametrize(("verdict", "status", "reason"), [
    pytest.param(ApprovalVerdict(satisfied=False, declined=False, missing=["qa"]), PENDING,
                 "not yet given: qa", id="not-yet-given"),
    pytest.param(ApprovalVerdict(satisfied=False, declined=False, missing=["qa"],
                                 problems=["quinn's approval does not count: the author"]),
                 FAILED, "missing: qa (quinn's approval does not count: the author)",
                 id="given-but-not-counted"),
    pytest.param(ApprovalVerdict(satisfied=False, declined=True, missing=["qa"],
                                 problems=["Quinn Tester (quinn) declined as 'qa'"]),
                 FAILED, "declined; missing: qa (Quinn Tester (quinn) declined as 'qa')",
                 id="declined"),
    pytest.param(ApprovalVerdict(satisfied=False, declined=False), UNKNOWN,
                 "approval verdict is inconsistent", id="inconsistent"),
])
def test_approval_gate(policy, roster, verdict, status, reason):
    result = gate_of(evaluate_gates(make_change(), policy, roster, verdict), "approval")
    assert (result.status, result.reason) == (status, reason)


@pytest.mark.parametrize(("category", "gates"), [
    pytest.param(Category.STANDARD, ["automated_tests", "rollback_plan", "approval"],
                 id="standard"),
    pytest.param(Category.NORMAL, list(GATES), id="normal"),
    pytest.param(Category.MAJOR, list(GATES), id="major"),
    pytest.param(Category.EMERGENCY, list(GATES), id="emergency"),
])
def test_only_the_categorys_gates_in_policy_order(policy, roster, category, gates):
    results = evaluate_gates(make_change(category=category), policy, roster, OK)
    assert [r.gate for r in results] == gates


def test_emergency_bypass_is_recorded(policy, roster):
    change = make_change(category=Category.EMERGENCY,
                         evidence=good_evidence(code_review=None, staging_passed=None))
    results = evaluate_gates(change, policy, roster, OK,
                             bypassed={"code_review", "staging_validation"})
    statuses = {r.gate: r.status for r in results}
    assert statuses == {"code_review": BYPASSED, "automated_tests": PASSED,
                        "security_scan": PASSED, "staging_validation": BYPASSED,
                        "rollback_plan": PASSED, "approval": PASSED}
    assert gate_of(results, "code_review").reason == (
        "bypassed under the emergency process (allowed by the policy; tracked for the "
        "quarterly report)")
    assert gates_block(results) == []


@pytest.mark.parametrize(("category", "bypassed", "message"), [
    pytest.param(Category.NORMAL, {"code_review"},
                 "normal changes may not bypass code_review (bypassable: none)", id="normal"),
    pytest.param(Category.EMERGENCY, {"security_scan", "code_review", "approval"},
                 "emergency changes may not bypass approval, security_scan (bypassable: "
                 "code_review, staging_validation)", id="emergency-not-bypassable"),
])
def test_bypass_refused(policy, roster, category, bypassed, message):
    with pytest.raises(ValueError) as info:
        evaluate_gates(make_change(category=category), policy, roster, OK, bypassed=bypassed)
    assert str(info.value) == message


def test_gates_block_fails_closed(policy, roster):
    change = make_change(evidence=good_evidence(ci=None, sast=SastEvidence(critical=1, high=0)))
    blocking = gates_block(evaluate_gates(change, policy, roster, OK))
    assert [(r.gate, r.status) for r in blocking] == [("automated_tests", UNKNOWN),
                                                      ("security_scan", FAILED)]


def test_blocking_severities_come_from_the_policy(policy, roster):
    strict = policy.model_copy(update={"gates": policy.gates.model_copy(update={
        "security_scan": SecurityScanGate(blocking_severities=["critical", "high", "medium"])})})
    result = gate_of(evaluate_gates(make_change(), strict, roster, OK), "security_scan")
    assert (result.status, result.reason) == (UNKNOWN,
                                              "SAST result has no count of medium findings")


def test_all_pass_on_good_evidence(policy, roster):
    results = evaluate_gates(make_change(), policy, roster, OK)
    assert gates_block(results) == []
    assert all(r.status is PASSED for r in results)


@pytest.mark.parametrize(("statuses", "gaps"), [
    pytest.param({"code_review": PASSED, "staging_validation": BYPASSED}, [], id="cleared"),
    pytest.param({"code_review": BYPASSED, "staging_validation": PASSED},
                 [("code_review", "bypassed")], id="a-bypass-the-category-may-not-make"),
    pytest.param({"staging_validation": PENDING, "extra": FAILED},
                 [("code_review", "not evaluated"), ("staging_validation", "pending"),
                  ("extra", "failed")], id="missing-first-in-order-then-the-rest"),
    pytest.param({"code_review": UNKNOWN, "staging_validation": PASSED},
                 [("code_review", "unknown")], id="unknown-blocks"),
])
def test_recorded_gate_gaps_judge_a_recorded_evaluation(
        statuses: dict[str, GateStatus], gaps: list[tuple[str, str]]) -> None:
    assert recorded_gate_gaps(statuses, ["code_review", "staging_validation"],
                              ["staging_validation"]) == gaps
