"""A run says what it does and what it waits for: log lines, its state, the status artifact."""

from __future__ import annotations

import threading
import time
from typing import Any

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

from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack
from flows.change_request import change_request


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
