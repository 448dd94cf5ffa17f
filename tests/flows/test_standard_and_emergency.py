"""Standard and emergency changes end to end, and the emergency's follow-up."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from changeflow.approver import CodeNotice, ScriptedApprover, approve_first
from changeflow.stack import Stack
from flows.change_request import change_request
from flows.emergency import emergency_follow_up, emergency_obligation
from flows.lifecycle import emergency_change, standard_change
from integrations.factory import installed
from integrations.outbox import read_outbox
from tasks.common import ChangeStopped


def types_of(stack: Stack, change_id: str) -> list[str]:
    return [e.type for e in stack.adapters.change_log.events(change_id)]


def edit_ticket(stack: Stack, key: str, **changes: Any) -> None:
    path = stack.settings.resolved_tickets_dir / f"{key}.yaml"
    fields = yaml.safe_load(path.read_text())
    fields.update(changes)
    path.write_text(yaml.safe_dump(fields, sort_keys=False))


def test_a_standard_change_that_fits_is_self_approved_and_deployed(
        stack: Stack, approver: ScriptedApprover) -> None:
    result = standard_change("CHG-105")
    assert result["outcome"] == "succeeded"
    events = stack.adapters.change_log.events("CHG-105")
    checked = next(e for e in events if e.type == "procedure_checked")
    assert checked.payload == {"procedure": "certificate_renewal", "fits": True, "reasons": []}
    (approval,) = [e for e in events if e.type == "approval_recorded"]
    assert (approval.actor, approval.payload["role"], approval.payload["purpose"]) == (
        "alice", "engineer", "self-approval")
    gates = next(e for e in events if e.type == "gates_passed").payload["gates"]
    assert [g["gate"] for g in gates] == ["automated_tests", "rollback_plan", "approval"]
    types = [e.type for e in events]
    assert "staging_started" not in types and "change_reclassified" not in types
    record = stack.adapters.change_log.record("CHG-105")
    assert record is not None and record.approvers == ["engineer:alice"]


def test_a_standard_ticket_outside_its_procedure_becomes_a_normal_change(
        stack: Stack, approver: ScriptedApprover) -> None:
    edit_ticket(stack, "CHG-105", changed_paths=["deploy/certs/sample.pem", "src/tls.py"],
                evidence={"code_review": {"reviewers": ["erin", "bob"]},
                          "ci": {"status": "passed", "failed_tests": 0},
                          "sast": {"critical": 0, "high": 0}})
    result = change_request("CHG-105")
    assert result["outcome"] == "succeeded"
    events = stack.adapters.change_log.events("CHG-105")
    moved = next(e for e in events if e.type == "change_reclassified")
    assert moved.payload["from"] == "standard" and moved.payload["to"] == "normal"
    assert moved.payload["reasons"] == [
        "path 'src/tls.py' is outside certificate_renewal (allowed: **/*.pem, **/certs/**)"]
    record = stack.adapters.change_log.record("CHG-105")
    assert record is not None
    assert (record.category, record.reclassified_from) == ("normal", "standard")
    # reviewed as a normal change: a certificate is encryption, so Security too
    assert record.approvers == ["engineering_lead:erin", "security:sam", "qa:quinn"]
    assert "staging_passed" in [e.type for e in events]
    comments = stack.adapters.tickets.comments("CHG-105")
    assert any("handled as a normal change" in c and "src/tls.py" in c for c in comments)


def test_an_emergency_is_approved_verbally_deployed_at_once_and_owes_its_follow_ups(
        stack: Stack, approver: ScriptedApprover) -> None:
    result = emergency_change("CHG-201")
    assert result["outcome"] == "succeeded"
    events = stack.adapters.change_log.events("CHG-201")
    (verbal,) = [e for e in events if e.type == "approval_recorded"]
    assert verbal.actor == "erin"  # the recorder (never the author), with her own code
    assert {k: verbal.payload[k] for k in ("person_id", "role", "channel", "via",
                                           "recorded_by")} == {
        "person_id": "carol", "role": "ciso", "channel": "verbal", "via": "phone",
        "recorded_by": "erin"}
    bypassed = [e.payload["gate"] for e in events if e.type == "gate_bypassed"]
    assert bypassed == ["code_review", "staging_validation"]
    gates = next(e for e in events if e.type == "gates_passed").payload["gates"]
    assert {g["gate"]: g["status"] for g in gates} == {
        "code_review": "bypassed", "automated_tests": "passed", "security_scan": "passed",
        "staging_validation": "bypassed", "rollback_plan": "passed", "approval": "passed"}
    types = [e.type for e in events]
    assert "staging_started" not in types and "availability_confirmed" not in types
    assert next(e for e in events if e.type == "deployment_scheduled").payload["immediate"]
    record = stack.adapters.change_log.record("CHG-201")
    assert record is not None
    assert sorted(record.obligations) == ["approval_confirmation", "ciso_signoff",
                                          "documentation", "post_hoc_review"]
    assert record.obligations["documentation"].owners == ["alice"]
    assert record.obligations["post_hoc_review"].owners == ["erin"]
    assert record.obligations["approval_confirmation"].owners == ["carol"]
    confirm = [n for n in read_outbox(stack.outbox) if n["kind"] == "confirm"]
    assert [n["to"] for n in confirm] == ["carol"]


def lead_without_reason_first(notices: list[CodeNotice], attempt: int) -> dict[str, Any]:
    oscar = next(n for n in notices if n.to == "oscar")  # erin may not record her own word
    form = {"approver": "erin", "recorder": oscar.to, "code": oscar.code, "channel": "phone"}
    if attempt > 0:
        form["fallback_reason"] = "the CISO is on a flight until 18:00"
    return form


def test_a_verbal_approval_by_the_lead_without_a_reason_is_refused(stack: Stack) -> None:
    with ScriptedApprover(stack.outbox, lead_without_reason_first).start(interval=0.2):
        result = emergency_change("CHG-201")
    assert result["outcome"] == "succeeded"
    events = stack.adapters.change_log.events("CHG-201")
    (refused,) = [e for e in events if e.type == "approval_attempt_failed"]
    assert refused.payload["reason"] == (
        "Erin Lead (erin) approved as 'engineering_lead' in place of 'ciso' without a "
        "fallback_reason (why the ciso was unavailable); the code is spent and a new one "
        "was sent")
    (accepted,) = [e for e in events if e.type == "approval_recorded"]
    assert accepted.payload["role"] == "engineering_lead"
    assert accepted.payload["fallback_reason"] == "the CISO is on a flight until 18:00"


def test_the_obligations_close_by_attributable_answers_in_order(
        stack: Stack, approver: ScriptedApprover) -> None:
    emergency_change("CHG-201")
    with pytest.raises(ChangeStopped, match="documentation incomplete: scope: missing"):
        emergency_obligation("CHG-201", "documentation")
    with pytest.raises(ChangeStopped, match="first: documentation, post_hoc_review"):
        emergency_obligation("CHG-201", "ciso_signoff")
    edit_ticket(stack, "CHG-201", scope="sample service payments client",
                risk_assessment="Low: a longer timeout only", testing_plan="CI and smoke checks")
    for kind, by in (("approval_confirmation", "carol"), ("documentation", "alice"),
                     ("post_hoc_review", "erin"), ("ciso_signoff", "carol")):
        assert emergency_obligation("CHG-201", kind) == {
            "change": "CHG-201", "obligation": kind, "outcome": "done", "by": by}
    record = stack.adapters.change_log.record("CHG-201")
    assert record is not None and all(o.done for o in record.obligations.values())
    (snapshot,) = [e for e in stack.adapters.change_log.events("CHG-201")
                   if e.type == "ticket_snapshot"]
    assert snapshot.payload["change"]["testing_plan"] == "CI and smoke checks"
    assert emergency_follow_up()["sent"] == []


def test_an_overdue_obligation_is_escalated_once_not_on_every_run(
        stack: Stack, approver: ScriptedApprover) -> None:
    emergency_change("CHG-202")
    real = stack.adapters.clock

    def run_at(hours: float) -> dict[str, Any]:
        later = stack.adapters.replace(clock=lambda: real() + timedelta(hours=hours))
        with installed(later):
            return emergency_follow_up()

    assert run_at(1)["sent"] == []
    soon = run_at(20)["sent"]
    assert {(s["obligation"], s["action"]) for s in soon} == {
        ("approval_confirmation", "reminder"), ("documentation", "reminder")}
    late = run_at(25)["sent"]
    assert {(s["obligation"], s["action"], tuple(s["to"])) for s in late} == {
        ("approval_confirmation", "escalation", ("carol",)),
        ("documentation", "escalation", ("bob", "carol"))}
    assert run_at(26)["sent"] == []
    assert run_at(30)["sent"] == []
    escalated = [e for e in stack.adapters.change_log.events("CHG-202")
                 if e.type == "escalated"]
    assert len(escalated) == 2
    assert run_at(25 + 24)["sent"] != []  # a day later, a new period: escalated again


BERLIN = ZoneInfo("Europe/Berlin")
BEFORE_CHRISTMAS = datetime(2026, 12, 23, 15, 0, tzinfo=BERLIN)
"""A Wednesday; then 24-26 December (holidays), a weekend, 31 December and 1 January."""


def test_deadlines_run_across_a_weekend_and_holidays_with_a_frozen_clock(
        stack: Stack, approver: ScriptedApprover) -> None:
    def at(moment: datetime) -> Any:
        return installed(stack.adapters.replace(clock=lambda: moment))

    with at(BEFORE_CHRISTMAS):
        emergency_change("CHG-201")
    record = stack.adapters.change_log.record("CHG-201")
    assert record is not None
    dues = {kind: o.due for kind, o in record.obligations.items()}
    assert dues["documentation"] == BEFORE_CHRISTMAS + timedelta(hours=24)  # a holiday
    # business days: 28, 29, 30 December, 4 and 5 January
    assert dues["post_hoc_review"] == datetime(2027, 1, 5, 15, 0, tzinfo=BERLIN)
    assert dues["ciso_signoff"] == dues["post_hoc_review"]
    review = datetime(2027, 1, 5, 15, 0, tzinfo=BERLIN)
    for moment, expected in (
            (review - timedelta(hours=7), set()),
            (review - timedelta(hours=5), {("post_hoc_review", "reminder"),
                                           ("ciso_signoff", "reminder")}),
            (review, set()),  # on the deadline: still on time, reminded already
            (review + timedelta(minutes=1), {("post_hoc_review", "escalation"),
                                             ("ciso_signoff", "escalation")})):
        with at(moment):
            sent = emergency_follow_up()["sent"]
        # the documentation and the confirmation were escalated on the first run already
        assert {(s["obligation"], s["action"]) for s in sent
                if s["obligation"] in ("post_hoc_review", "ciso_signoff")} == expected, moment


def dispute(notices: list[CodeNotice], attempt: int) -> dict[str, Any]:
    first = notices[0]
    if first.purpose != "approval_confirmation":
        return approve_first(notices, attempt)
    return {"decision": "decline", "approver": first.to, "code": first.code,
            "comment": "I never approved this"}


def test_a_disputed_verbal_approval_is_escalated_to_the_ciso_at_once(stack: Stack) -> None:
    with ScriptedApprover(stack.outbox, dispute).start(interval=0.2):
        emergency_change("CHG-201")
        result = emergency_obligation("CHG-201", "approval_confirmation")
    assert result["outcome"] == "refused"
    escalated = [e for e in stack.adapters.change_log.events("CHG-201")
                 if e.type == "escalated"]
    assert len(escalated) == 1 and escalated[0].payload["status"] == "refused"
    assert "I never approved this" in escalated[0].payload["detail"]


def test_emergency_tickets_must_name_their_trigger(stack: Stack) -> None:
    edit_ticket(stack, "CHG-202", incident_ref="INC-9", emergency_trigger="outage")
    with pytest.raises(ChangeStopped) as refused:
        emergency_change("CHG-202")
    assert "emergency_trigger: 'outage' is not an emergency" in str(refused.value)
    assert types_of(stack, "CHG-202") == ["validation_failed", "notice_delivered"]
