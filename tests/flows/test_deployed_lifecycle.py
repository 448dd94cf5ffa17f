"""Run from a deployment, a waiting change is suspended: no process is held for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL

from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack
from config.settings import PROJECT_ROOT
from tests.support.waiting import wait_for


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def served(stack: Stack, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`changeflow serve` for the stack, against the test server, until the test ends."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "CHANGEFLOW_CONFIG_DIR": str(stack.settings.config_dir),
           "CHANGEFLOW_VAR_DIR": str(stack.settings.var_dir),
           "CHANGEFLOW_TICKETS_DIR": str(stack.settings.resolved_tickets_dir)}
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen([str(Path(sys.executable).with_name("changeflow")), "serve"],
                                  cwd=PROJECT_ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with get_client(sync_client=True) as client:
            wait_for(lambda: _deployed(client), "the deployments to be served", 120)
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_change_run_from_a_deployment_suspends_and_resumes_from_the_top(
        stack: Stack, served: subprocess.Popen[bytes]) -> None:
    with get_client(sync_client=True) as client:
        run = run_deployment("change-request/change-request",
                             parameters={"ticket_key": "CHG-101"}, timeout=0)
        suspended = wait_for(lambda: _suspended(client, run.id), "the run to suspend", 120)
        assert suspended.state_details.pause_key == "review-engineering-lead-0"
        # The run waits for the engineering lead, and no process is held for it.
        wait_for(lambda: children_of(served.pid) == [], "the run's process to exit", 30)
        assert _suspended(client, run.id)
        with ScriptedApprover(stack.outbox).start(interval=0.3):
            final = wait_for(lambda: _final(client, run.id), "the run to finish", 240)
    assert final.is_completed(), final
    record = stack.adapters.change_log.record("CHG-101")
    assert record is not None and record.outcome == "succeeded"
    events = stack.adapters.change_log.events("CHG-101")
    requested = [(e.payload["role"], e.payload["purpose"]) for e in events
                 if e.type == "approval_requested"]
    assert len(requested) == len(set(requested)) == 4  # restarts asked nobody twice
    assert sum(e.type == "deployment_started" for e in events) == 1


def test_a_slot_in_the_future_is_a_scheduled_deploy_run(
        stack: Stack, served: subprocess.Popen[bytes]) -> None:
    path = stack.settings.config_dir / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["schedule"]["notice_hours"] = 24
    path.write_text(yaml.safe_dump(policy))
    with ScriptedApprover(stack.outbox).start(interval=0.3):
        with get_client(sync_client=True) as client:
            run = run_deployment("change-request/change-request",
                                 parameters={"ticket_key": "CHG-101"}, timeout=0)
            final = wait_for(lambda: _final(client, run.id), "the run to finish", 240)
            assert final.is_completed(), final
            assert stack.adapters.change_log.record("CHG-101").state == "scheduled"  # type: ignore[union-attr]
            deploy = client.read_deployment_by_name("change-deploy/change-deploy")
            scheduled = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deploy.id])))
    (slot_event,) = [e for e in stack.adapters.change_log.events("CHG-101")
                     if e.type == "deployment_scheduled"]
    slot = datetime.fromisoformat(slot_event.payload["slot"])
    assert slot - datetime.now(UTC) > timedelta(hours=23)
    assert [(r.parameters, r.expected_start_time) for r in scheduled] == [
        ({"ticket_key": "CHG-101"}, slot)]
    assert scheduled[0].state is not None and scheduled[0].state.is_scheduled()


def _deployed(client) -> bool:  # type: ignore[no-untyped-def]
    try:
        client.read_deployment_by_name("change-request/change-request")
    except Exception:  # noqa: BLE001 - not registered yet
        return False
    return True


def _suspended(client, run_id):  # type: ignore[no-untyped-def]
    state = client.read_flow_run(run_id).state
    keyset = state.state_details.run_input_keyset if state else None
    return state if state and state.name == "Suspended" and keyset else None


def _final(client, run_id):  # type: ignore[no-untyped-def]
    state = client.read_flow_run(run_id).state
    return state if state and state.is_final() else None
