"""The record's clearance for production: state, approvals and gates judged again."""

from __future__ import annotations

import pytest

from domain.approvals import ApprovalVerdict
from domain.clearance import Action, production_clearance
from domain.models import GateResult, GateStatus

APPROVED = ApprovalVerdict(satisfied=True, declined=False,
                           approvers={"engineering_lead": "erin", "qa": "quinn"})
REQUIRED = ["code_review", "automated_tests", "approval"]


def gates(**statuses: str) -> list[GateResult]:
    found = {g: "passed" for g in REQUIRED} | statuses
    return [GateResult(gate=g, status=GateStatus(s), reason="") for g, s in found.items()]


def test_a_record_that_clears_its_deploy() -> None:
    assert production_clearance(Action.DEPLOY, "scheduled", APPROVED, gates(), REQUIRED) == []


@pytest.mark.parametrize(("action", "state", "approvals", "results", "words"), [
    (Action.DEPLOY, "in_review", APPROVED, gates(), "state 'in_review'"),
    (Action.SCHEDULE, "deployed", APPROVED, gates(), "may not schedule the deployment"),
    (Action.CLOSE_SUCCEEDED, "rolled_back", APPROVED, gates(), "close as succeeded"),
    (Action.DEPLOY, "ready", ApprovalVerdict(satisfied=False, declined=False,
                                             missing=["qa"]), gates(), "missing approval: qa"),
    (Action.DEPLOY, "ready", ApprovalVerdict(satisfied=False, declined=True,
                                             problems=["quinn declined"]), gates(),
     "quinn declined"),
    (Action.DEPLOY, "ready", APPROVED, None, "no gate evaluation is recorded"),
    (Action.DEPLOY, "ready", APPROVED, gates(automated_tests="failed"),
     "automated_tests failed"),
    (Action.DEPLOY, "ready", APPROVED, gates(code_review="unknown"), "code_review unknown"),
    (Action.DEPLOY, "ready", APPROVED, gates()[1:], "no recorded result: code_review"),
])
def test_what_does_not_clear(action: Action, state: str, approvals: ApprovalVerdict,
                             results: list[GateResult] | None, words: str) -> None:
    problems = production_clearance(action, state, approvals, results, REQUIRED)
    assert len(problems) == 1 and words in problems[0]


def test_a_bypassed_gate_does_not_block() -> None:
    assert production_clearance(Action.DEPLOY, "ready", APPROVED,
                                gates(code_review="bypassed"), REQUIRED) == []
