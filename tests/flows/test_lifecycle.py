"""Normal and major changes end to end, under a Prefect test server, on the local stack."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack, embedded_stack
from flows.change_request import change_request
from integrations.outbox import read_outbox
from tasks.common import ChangeStopped
from tasks.intake import ChangeRefused


def types_of(stack: Stack, change_id: str) -> list[str]:
    return [e.type for e in stack.adapters.change_log.events(change_id)]


def test_a_normal_change_goes_through_every_step(stack: Stack,
                                                 approver: ScriptedApprover) -> None:
    result = change_request("CHG-101")
    assert result == {"change": "CHG-101", "state": "closed", "outcome": "succeeded",
                      "incidents": []}
    types = types_of(stack, "CHG-101")
    for expected in ("change_submitted", "approval_requested", "approval_recorded",
                     "approval_granted", "staging_started", "staging_passed", "gates_passed",
                     "deployment_scheduled", "availability_confirmed", "deployment_started",
                     "deployment_succeeded", "verification_passed", "change_closed"):
        assert expected in types, expected
    assert types.index("deployment_started") < types.index("deployment_succeeded")
    record = stack.adapters.change_log.record("CHG-101")
    assert record is not None
    assert record.approvers == ["engineering_lead:erin", "qa:quinn"]
    roles = [(a["role"], a["purpose"]) for a in approver.answers]
    assert roles == [("engineering_lead", "review"), ("qa", "staging-sign-off"),
                     ("engineer", "availability"), ("reviewer", "availability")]
    assert stack.adapters.tickets.get("CHG-101").status == "closed"
    assert stack.adapters.change_log.verify().ok


def test_a_major_change_touching_authentication_needs_security_and_the_ciso(
        stack: Stack, approver: ScriptedApprover) -> None:
    result = change_request("CHG-102")
    assert result["outcome"] == "succeeded"
    record = stack.adapters.change_log.record("CHG-102")
    assert record is not None
    assert sorted(record.approvers) == ["ciso:carol", "engineering_lead:erin", "qa:quinn",
                                        "security:sam"]


def test_a_broken_version_is_rolled_back_and_opens_a_p3_incident(
        stack: Stack, approver: ScriptedApprover) -> None:
    result = change_request("CHG-103")
    assert result == {"change": "CHG-103", "state": "closed", "outcome": "rolled_back",
                      "incidents": ["INC-CHG-103-1"]}
    events = stack.adapters.change_log.events("CHG-103")
    incident = next(e for e in events if e.type == "incident_opened")
    assert incident.payload["priority"] == 3
    rollback = next(e for e in events if e.type == "rollback_succeeded")
    assert rollback.payload["to_version"] == "1.0.0" and rollback.payload["estimate_minutes"]
    assert any(n["kind"] == "incident" and n["to"] == "oscar"  # the rollback owner
               for n in read_outbox(stack.outbox))


def test_a_ticket_without_rollback_plan_is_refused_and_nothing_else_happens(
        stack: Stack) -> None:
    with pytest.raises(ChangeRefused, match="rollback_plan: missing"):
        change_request("CHG-104")
    assert types_of(stack, "CHG-104") == ["validation_failed", "notice_delivered"]
    (told,) = [n for n in read_outbox(stack.outbox) if n["change_id"] == "CHG-104"]
    assert (told["to"], told["kind"]) == ("bob", "refused")  # the author
    assert "rollback_plan: missing" in told["body"]
    ticket = stack.adapters.tickets.get("CHG-104")
    assert ticket.status == "needs information"
    (comment,) = stack.adapters.tickets.comments("CHG-104")
    assert "rollback_plan: missing" in comment


def test_the_run_leaves_an_evidence_artifact(stack: Stack, approver: ScriptedApprover) -> None:
    """Its fields as text: a summary written as a link and an image draws neither."""
    path = stack.settings.resolved_tickets_dir / "CHG-101.yaml"
    ticket = yaml.safe_load(path.read_text())
    ticket["summary"] += " [log in](https://evil.example/x) ![](https://evil.example/i.png)"
    path.write_text(yaml.safe_dump(ticket, sort_keys=False))
    change_request("CHG-101")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(  # the session's server may hold older ones
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["evidence-chg-101"])),
            sort=ArtifactSort.CREATED_DESC)
    assert artifacts, "no evidence artifact"
    html = MarkdownIt("gfm-like").render(str(artifacts[0].data))
    for cell in ("<td>change ID</td>\n<td>CHG-101</td>", "<td>author</td>\n<td>alice</td>",
                 "<td>approvers</td>\n<td>engineering_lead:erin, qa:quinn</td>",
                 "<td>outcome</td>\n<td>succeeded</td>", "<td>incidents</td>\n<td>none</td>",
                 "<td>deployment_succeeded</td>",
                 "<td>code_review</td>\n<td>passed</td>\n<td>ticket</td>",
                 "<td>staging_validation</td>\n<td>passed</td>\n<td>changeflow</td>",
                 "[log in](https://evil.example/x) ![](https://evil.example/i.png)</h1>"):
        assert cell in html, cell
    assert "<a " not in html and "<img" not in html


def test_failing_staging_tests_stop_the_change_and_go_on_the_ticket(tmp_path: Path) -> None:
    with embedded_stack(tmp_path, port=0, broken=("2.1.0",), approval_poll_seconds=0.2) as stack:
        with ScriptedApprover(stack.outbox).start(interval=0.2):
            with pytest.raises(ChangeStopped, match="staging failed: staging-health"):
                change_request("CHG-103")
        record = stack.adapters.change_log.record("CHG-103")
        assert record is not None and (record.state, record.outcome) == ("failed", "failed")
        comment = stack.adapters.tickets.comments("CHG-103")[-1]
        assert "staging-health: exit 1" in comment and "500 broken 2.1.0" in comment
        types = [e.type for e in stack.adapters.change_log.events("CHG-103")]
        assert "deployment_started" not in types


def test_a_blocking_gate_stops_the_change_with_its_reason(
        stack: Stack, approver: ScriptedApprover) -> None:
    tickets = stack.settings.resolved_tickets_dir
    ticket = yaml.safe_load((tickets / "CHG-101.yaml").read_text())
    ticket["evidence"]["sast"]["high"] = 2
    (tickets / "CHG-105.yaml").write_text(yaml.safe_dump(ticket))
    with pytest.raises(ChangeStopped, match="blocked by gates: security_scan"):
        change_request("CHG-105")
    events = stack.adapters.change_log.events("CHG-105")
    blocked = next(e for e in events if e.type == "gates_blocked")
    scan = next(g for g in blocked.payload["gates"] if g["gate"] == "security_scan")
    assert scan["status"] == "failed" and "high" in scan["reason"]
    assert "security_scan" in stack.adapters.tickets.comments("CHG-105")[-1]
    assert "deployment_started" not in [e.type for e in events]
