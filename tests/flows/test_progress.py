"""A run says what it does and what it waits for: log lines, its state, the status artifact."""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID

import yaml
from markdown_it import MarkdownIt
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterName,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import ArtifactSort
from prefect.input.actions import read_flow_run_input

from changeflow.approver import CodeNotice, ScriptedApprover, approve_first
from changeflow.stack import Stack
from config.loader import load_config
from flows.change_request import change_request
from integrations.outbox import read_outbox
from tasks.forms import AVAILABLE
from tasks.markdown import plain


def waiting_run(name: str, timeout: float = 60) -> FlowRun:
    """The run named `name` once it is paused."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[name])))
            paused = [r for r in runs if r.state and r.state.type == StateType.PAUSED]
            if paused:
                return paused[0]
            time.sleep(0.1)
    raise AssertionError(f"no run {name!r} paused within {timeout} s")


def run_logs(run: FlowRun, until: str, timeout: float = 30) -> list[str]:
    """The run's log lines on the server, once one starting with `until` has arrived."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = [log.message for log in client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run.id])))]
            if any(m.startswith(until) for m in logs) or time.monotonic() > deadline:
                return logs
            time.sleep(0.2)


def status(change_key: str) -> str:
    """The change's latest status artifact, rendered as the UI renders markdown."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[change_key])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    assert found, f"no artifact {change_key}"
    return MarkdownIt("gfm-like").render(str(found[0].data))


def test_a_waiting_run_says_what_it_waits_for_and_from_whom(stack: Stack) -> None:
    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(change_request("CHG-101")))
    runner.start()
    try:
        run = waiting_run("CHG-101 · change-request")
        assert {"CHG-101", "service:sample"} <= set(run.tags)  # found by key or service
        assert run.state is not None and run.state.message is not None
        assert run.state.message.startswith(
            "Waiting for the review decision as engineering_lead from erin, until ")
        now = status("status-chg-101")
        assert now.startswith("<h1>CHG-101: <strong>in_review</strong></h1>")
        assert ("<p><strong>Waiting for:</strong> the review decision as engineering_lead from "
                "erin, until ") in now
        assert "<td>submitted by alice: " in now
        assert "<td>asked for the review decision as engineering_lead: codes sent to erin</td>" \
            in now
        logs = run_logs(run, "CHG-101: waiting for ")
        assert any(m.startswith("CHG-101: submitted by alice: ") for m in logs)
        assert any(m.startswith("CHG-101: waiting for the review decision as "
                                "engineering_lead from erin") for m in logs)
    finally:
        with ScriptedApprover(stack.outbox).start(interval=0.2):
            runner.join(timeout=240)
    assert outcome["outcome"] == "succeeded"
    assert status("status-chg-101").startswith(
        "<h1>CHG-101: <strong>closed</strong>, outcome <strong>succeeded</strong></h1>")
    with get_client(sync_client=True) as client:  # written many times, kept once a run
        kept = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["status-chg-101"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert len(kept) == 1
    told = [n for n in read_outbox(stack.outbox) if n["to"] == "alice"]
    assert [(n["kind"], n["subject"]) for n in told if n["kind"] == "closed"] == [
        ("closed", "CHG-101 closed: succeeded")]  # the author hears how it ended


def flow_run_of(state: Any) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def test_a_refused_ticket_ends_its_run_with_what_to_fix_and_no_traceback(
        stack: Stack) -> None:
    state = change_request("CHG-104", return_state=True)
    assert (state.type, state.name) == (StateType.FAILED, "Refused")
    assert state.message.startswith("CHG-104 cannot be accepted yet:\n- rollback_plan: ")
    logs = run_logs(flow_run_of(state), "REFUSED: ")
    assert [m.splitlines()[0] for m in logs if m.startswith("REFUSED: ")] == [
        "REFUSED: CHG-104 cannot be accepted yet:"]
    assert not [m for m in logs if "Traceback" in m]
    refused = status("refused-chg-104")
    assert refused.startswith("<h1>CHG-104: refused</h1>\n<p>CHG-104 cannot be accepted "
                              "yet</p>\n<h2>What to fix</h2>\n<ul>\n<li>rollback_plan: missing")


def decline(notices: list[CodeNotice], attempt: int) -> dict[str, Any]:
    return {"decision": "decline", "approver": notices[0].to, "code": notices[0].code,
            "comment": "not this week: the freeze"}


def test_a_declined_change_ends_its_run_rejected_and_the_author_hears_why(
        stack: Stack) -> None:
    with ScriptedApprover(stack.outbox, policy=decline).start(interval=0.1):
        state = change_request("CHG-101", return_state=True)
    assert (state.type, state.name) == (StateType.FAILED, "Rejected")
    assert not [m for m in run_logs(flow_run_of(state), "REJECTED: ") if "Traceback" in m]
    rejected = status("refused-chg-101")
    assert "<h1>CHG-101: rejected</h1>" in rejected
    assert "<li>A rejected change is final: open a new change ticket" in rejected
    (told,) = [n for n in read_outbox(stack.outbox) if n["kind"] == "rejected"]
    assert (told["to"], told["subject"]) == ("alice", "CHG-101 rejected in review")
    assert "(erin) declined as 'engineering_lead': not this week: the freeze" in told["body"]
    assert told["link"].endswith(f"/runs/flow-run/{state.state_details.flow_run_id}")


HOSTILE_OUTPUT = ("| gate | status |\n|---|---|\n| code_review | passed |\n"
                  "[enter your code](https://evil.example/steal) <img src=x onerror=alert(1)>")
"""A staging test's output dressed as a table of gates, a link and HTML."""


def with_hostile_staging_test(stack: Stack) -> None:
    """The catalog's staging tests end with one that prints `HOSTILE_OUTPUT` and passes."""
    path = stack.settings.config_dir / "services.yaml"
    catalog = yaml.safe_load(path.read_text())
    catalog["services"]["sample"]["environments"]["staging"]["tests"].append({
        "name": "hostile-output", "timeout_seconds": 30,
        "argv": ["{python}", "-c", f"print({HOSTILE_OUTPUT!r})"]})
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    stack.adapters.config = load_config(stack.settings.config_dir)


def test_each_form_puts_its_question_first_and_the_evidence_it_rests_on(
        stack: Stack) -> None:
    with_hostile_staging_test(stack)
    seen: dict[str, tuple[str, dict[str, Any]]] = {}

    def looking(notices: list[CodeNotice], attempt: int) -> dict[str, Any] | None:
        """Read the form as the approver sees it (its description and fields), then approve."""
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(notices[0].run_id))
        assert run.state is not None and run.state.state_details.run_input_keyset
        keys = run.state.state_details.run_input_keyset
        seen[notices[0].purpose] = (read_flow_run_input(keys["description"], run.id),
                                    read_flow_run_input(keys["schema"], run.id))
        return approve_first(notices, attempt)

    with ScriptedApprover(stack.outbox, policy=looking).start(interval=0.1):
        assert change_request("CHG-101")["outcome"] == "succeeded"
    (review, _), (sign_off, _), (available, schema) = (
        seen[p] for p in ("review", "staging-sign-off", "availability"))
    assert review.startswith("## CHG-101: your review decision as **engineering_lead**\n\n"
                             "**Asked of** erin, **by** ")
    assert sign_off.startswith("## CHG-101: your staging-sign-off decision as **qa**")
    results = sign_off.split("### Staging results\n\n")[1].split("\n\n")[0].splitlines()
    assert [line.split(":")[0] for line in results] == [
        "- **deploy**", f"- **{plain('staging-health')}**", f"- **{plain('hostile-output')}**"]
    assert all("passed (exit 0)" in line for line in results)
    shown = MarkdownIt("gfm-like").render(sign_off)  # a command's output stays text
    assert "<table" not in shown and "<img" not in shown and "href=" not in shown
    assert "[enter your code](https://evil.example/steal) &lt;img src=x" in shown
    assert "### Staging results" not in review  # before staging, nothing to show
    assert "- **staging_validation**: pending (changeflow's evidence): staging has not run " \
        "yet" in review
    assert available.startswith("## CHG-101: are you available?\n\nThe deployment of sample "
                                f"{plain('1.1.0')} to production is due at **")
    assert schema["properties"]["decision"]["description"] == AVAILABLE
    for text, _ in seen.values():  # lists, never a table: the form wraps at its width
        assert not [line for line in text.splitlines() if line.startswith("|")]
