"""The record's clearance for production: state, approvals and gates judged again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.loader import Config
from domain.approvals import ApprovalVerdict
from domain.clearance import Action, production_clearance, record_clearance
from domain.lifecycle import SIGN_OFF_PURPOSE
from domain.models import ChangeEvent, ChangeRequest, GateResult, GateStatus
from tests.unit.conftest import make_change

APPROVED = ApprovalVerdict(satisfied=True, declined=False,
                           approvers={"engineering_lead": "erin", "qa": "quinn"})
REQUIRED = ["code_review", "automated_tests", "approval"]
BYPASSABLE = ["code_review"]


def gates(**statuses: str) -> list[GateResult]:
    found = {g: "passed" for g in REQUIRED} | statuses
    return [GateResult(gate=g, status=GateStatus(s), reason="") for g, s in found.items()]


def test_a_record_that_clears_its_deploy() -> None:
    assert production_clearance(Action.DEPLOY, "scheduled", APPROVED, gates(), REQUIRED,
                                BYPASSABLE) == []


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
    (Action.DEPLOY, "ready", APPROVED, gates(automated_tests="bypassed"),
     "automated_tests bypassed"),  # a bypass the category may not make
    (Action.DEPLOY, "ready", APPROVED, gates(approval="pending"), "approval pending"),
])
def test_what_does_not_clear(action: Action, state: str, approvals: ApprovalVerdict,
                             results: list[GateResult] | None, words: str) -> None:
    problems = production_clearance(action, state, approvals, results, REQUIRED, BYPASSABLE)
    assert len(problems) == 1 and words in problems[0]


def test_a_bypassed_gate_does_not_block() -> None:
    assert production_clearance(Action.DEPLOY, "ready", APPROVED,
                                gates(code_review="bypassed"), REQUIRED, BYPASSABLE) == []


def history(change: ChangeRequest, *steps: tuple[str, dict[str, Any]]) -> list[ChangeEvent]:
    """The events of `change`: its submission, then `steps` (type, payload), a minute apart."""
    at = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    found = [("change_submitted", {
        "summary": change.summary, "description": change.description,
        "category": change.category.value, "service": change.service,
        "version": change.version, "author": change.author,
        "change": change.model_dump(mode="json")}), *steps]
    return [ChangeEvent(seq=n, change_id=change.id, type=t, at=at + timedelta(minutes=n),
                        actor="changeflow", payload=p, prev_hash="", hash="")
            for n, (t, p) in enumerate(found, 1)]


def decided(role: str, person: str, purpose: str = "review") -> tuple[str, dict[str, Any]]:
    return ("approval_recorded", {"role": role, "person_id": person, "decision": "approve",
                                  "purpose": purpose, "channel": "prefect-ui"})


def ready(change: ChangeRequest, *more: tuple[str, dict[str, Any]]) -> list[ChangeEvent]:
    """A normal change reviewed, staged, signed off and through its gates."""
    return history(change, ("approval_requested", {}), decided("engineering_lead", "erin"),
                   ("approval_granted", {}), ("staging_started", {}),
                   decided("qa", "quinn", SIGN_OFF_PURPOSE), ("staging_passed", {}),
                   ("gates_passed", {"gates": [g.model_dump(mode="json") for g in gates(
                       security_scan="passed", staging_validation="passed",
                       rollback_plan="passed")]}),
                   *more)


def test_a_record_judged_from_its_events_alone(config: Config) -> None:
    change = make_change()
    assert record_clearance(Action.DEPLOY, ready(change), change, config.policy,
                            config.roster) == []


def test_the_change_acted_on_must_be_the_recorded_one(config: Config) -> None:
    change = make_change()
    other = change.model_copy(update={"version": "9.9.9"})
    (problem,) = record_clearance(Action.DEPLOY, ready(change), other, config.policy,
                                  config.roster)
    assert "not the change recorded at submission" in problem and "version" in problem


def code_host_read(**changes: Any) -> tuple[str, dict[str, Any]]:
    return ("code_host_read", {
        "pull_request": "acme/sample#7", "url": "https://github.example/acme/sample/pull/7",
        "head_sha": "b" * 40, "author": "alice", "reviews": [], "required_checks": None,
        "required_from": "branch protection", "checks": [], "scan": "code scanning",
        "analysed": True, "open_alerts": [], "changed_paths": [], **changes})


def test_paths_the_code_host_reported_later_ask_for_their_review(config: Config) -> None:
    change = make_change()
    events = ready(change, code_host_read(changed_paths=["src/auth/login.py"]))
    problems = record_clearance(Action.DEPLOY, events, change, config.policy, config.roster)
    assert any("security" in p for p in problems)


def test_an_approver_the_code_host_reported_as_a_writer_no_longer_counts(
        config: Config) -> None:
    change = make_change()
    assert record_clearance(Action.DEPLOY, ready(change, code_host_read()), change,
                            config.policy, config.roster) == []
    events = ready(change, code_host_read(commit_logins=["alice-m", "erin-lead"]))
    problems = record_clearance(Action.DEPLOY, events, change, config.policy, config.roster)
    assert any("Erin Lead (erin) wrote code in the change's pull request" in p
               for p in problems)


def test_no_submission_recorded_clears_nothing(config: Config) -> None:
    change = make_change()
    events = [e for e in ready(change) if e.type != "change_submitted"]
    assert "no submission is recorded" in record_clearance(
        Action.DEPLOY, events, change, config.policy, config.roster)[0]
