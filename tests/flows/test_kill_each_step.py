"""A run killed at any step boundary is finished by the next run, never twice, never blind.

For each event a normal change (CHG-101) records, a real `change-request` process is
killed with SIGKILL right after that event is committed to the change log. Started
again, the change must end succeeded with its version deployed to production exactly
once (by the change log's deploy intents and by the deployer's own history), every
deployment verified, nobody asked again for a decision already recorded, and the hash
chain intact.

Killed between the deploy command's intent and the command's start, the run leaves a
deploy that may or may not have happened: the next run does not deploy again, and since
the checks find the old version answering, nothing is claimed deployed and the change is
rolled back with its incident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.settings import PREFECT_API_URL

from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack, embedded_stack
from config.settings import PROJECT_ROOT
from domain.models import ChangeEvent
from flows.change_request import change_request

KEY, VERSION = "CHG-101", "1.1.0"

BOUNDARIES = [
    ("change_submitted",),
    ("approval_granted",),
    ("staging_started",),
    ("staging_passed",),
    ("gates_passed",),
    ("deployment_scheduled",),
    ("deployment_started",),
    ("effect_finished", "action=deploy-production"),
    ("deployment_succeeded",),
    ("verification_passed",),
]
"""Each event after which the first run dies (type, then payload fields it must have)."""

HOLDING_THE_SLOT = {"deployment_started", "effect_started", "effect_finished",
                    "deployment_succeeded", "verification_passed"}
"""Events recorded while the run holds the service's deployment slot."""


def kill_after(stack: Stack, event: tuple[str, ...]) -> None:
    """Run the change in a process that SIGKILLs itself right after `event` is recorded."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "CHANGEFLOW_CONFIG_DIR": str(stack.settings.config_dir),
           "CHANGEFLOW_VAR_DIR": str(stack.settings.var_dir),
           "CHANGEFLOW_TICKETS_DIR": str(stack.settings.resolved_tickets_dir),
           "CHANGEFLOW_APPROVAL_POLL_SECONDS": "0.1"}
    done = subprocess.run([sys.executable, "-m", "tests.support.kill_after", KEY, *event],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -9, f"not killed at {event}: {done.stderr[-2000:]}"


def free_deploy_slot() -> None:
    """Free the slot the killed run held, as its lease's expiry (60 s) would."""
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(
            "deploy-sample", GlobalConcurrencyLimitUpdate(active_slots=0))


def production_deploys(stack: Stack) -> int:
    """Production deploys of the change's version in the deployer's own record."""
    history = stack.settings.var_dir / "sample" / "history.jsonl"
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    return sum(1 for d in lines if d["environment"] == "production" and d["version"] == VERSION)


def deploy_intents(events: list[ChangeEvent]) -> int:
    return sum(1 for e in events
               if e.type == "effect_started" and e.payload["action"] == "deploy-production")


def decisions(events: list[ChangeEvent]) -> list[ChangeEvent]:
    """Every decision given: approvals, sign-offs and confirmed availability."""
    return [e for e in events if e.type in ("approval_recorded", "availability_confirmed")
            and e.payload["decision"] == "approve"]


def decisions_asked_again(events: list[ChangeEvent], killed_at: int) -> list[str]:
    """Requests made after the kill for a decision given before it."""
    given = {(e.payload["role"], e.payload["purpose"]) for e in decisions(events)
             if e.seq <= killed_at}
    return [f"{e.payload['role']}/{e.payload['purpose']}" for e in events
            if e.type == "approval_requested" and e.seq > killed_at
            and (e.payload["role"], e.payload["purpose"]) in given]


def unverified_deployments(events: list[ChangeEvent]) -> list[int]:
    """Sequence numbers of deployments with no verification after them."""
    verified = [e.seq for e in events if e.type in ("verification_passed",
                                                    "verification_failed")]
    return [e.seq for e in events if e.type == "deployment_succeeded"
            and not any(v > e.seq for v in verified)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with embedded_stack(tmp_path, port=0, approval_poll_seconds=0.1) as running:
        yield running


@pytest.fixture
def quick_approver(stack: Stack) -> Iterator[ScriptedApprover]:
    """Approves every waiting decision, in this process or another, with its code."""
    with ScriptedApprover(stack.outbox).start(interval=0.1) as scripted:
        yield scripted


@pytest.mark.parametrize("event", BOUNDARIES, ids=lambda e: ":".join(e))
def test_a_run_killed_after_each_step_is_finished_once_by_the_next(
        stack: Stack, quick_approver: ScriptedApprover, event: tuple[str, ...]) -> None:
    kill_after(stack, event)
    log = stack.adapters.change_log
    before = log.events(KEY)
    assert before[-1].type == event[0]  # it died right there, nothing after
    if event[0] in HOLDING_THE_SLOT:
        free_deploy_slot()

    assert change_request(KEY)["outcome"] == "succeeded"

    events = log.events(KEY)
    assert deploy_intents(events) == 1
    assert production_deploys(stack) == 1
    assert unverified_deployments(events) == []
    assert decisions_asked_again(events, before[-1].seq) == []
    given = Counter((e.payload["role"], e.payload["purpose"]) for e in decisions(events))
    assert given == {("engineering_lead", "review"): 1, ("qa", "staging-sign-off"): 1,
                     ("engineer", "availability"): 1, ("reviewer", "availability"): 1}
    assert [e.type for e in events].count("change_closed") == 1
    assert log.verify().ok


def test_a_run_killed_after_the_deploy_intent_trusts_only_what_is_running(
        stack: Stack, quick_approver: ScriptedApprover) -> None:
    """Killed between the deploy command's intent and its start: it may or may not have
    run, so it is not run again; the checks find the old version, so nothing is claimed
    deployed and the change is rolled back, with its incident."""
    kill_after(stack, ("effect_started", "action=deploy-production"))
    free_deploy_slot()

    result = change_request(KEY)

    assert (result["outcome"], result["incidents"]) == ("rolled_back", [f"INC-{KEY}-1"])
    events = stack.adapters.change_log.events(KEY)
    assert deploy_intents(events) == 1 and production_deploys(stack) == 0
    types = [e.type for e in events]
    assert "deployment_succeeded" not in types and "verification_passed" not in types
    (incident,) = [e for e in events if e.type == "incident_opened"]
    assert incident.payload["priority"] == 3
    assert stack.adapters.change_log.verify().ok
