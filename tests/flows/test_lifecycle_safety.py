"""What must not happen: unattributable approvals, double deploys, blind redeploys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.settings import PREFECT_API_URL

from changeflow.approver import CodeNotice, ScriptedApprover
from changeflow.stack import Stack, embedded_stack
from config.loader import load_config
from config.settings import PROJECT_ROOT
from flows.change_request import change_request
from integrations.outbox import read_outbox
from tasks.common import ChangeStopped
from tasks.intake import submit_change
from tests.support.processes import processes_mentioning


def wrong_then_right(notices: list[CodeNotice], attempt: int) -> dict[str, Any]:
    first = notices[0]
    code = "AAAA-AAAA" if attempt == 0 and first.role == "engineering_lead" else first.code
    return {"decision": "approve", "approver": first.to, "code": code, "comment": ""}


def test_a_wrong_code_is_refused_recorded_and_the_form_shown_again(stack: Stack) -> None:
    with ScriptedApprover(stack.outbox, wrong_then_right).start(interval=0.2) as approver:
        assert change_request("CHG-101")["outcome"] == "succeeded"
    events = stack.adapters.change_log.events("CHG-101")
    (failed,) = [e for e in events if e.type == "approval_attempt_failed"]
    assert failed.payload["claimed"] == "erin" and failed.payload["role"] == "engineering_lead"
    assert failed.payload["reason"] == "the code is wrong for this person, run and role"
    lead = [e for e in events if e.type == "approval_recorded"
            and e.payload["role"] == "engineering_lead"]
    assert len(lead) == 1 and lead[0].actor == "erin"
    assert [a["role"] for a in approver.answers][:2] == ["engineering_lead", "engineering_lead"]


def decline_review(notices: list[CodeNotice], attempt: int) -> dict[str, Any]:
    first = notices[0]
    return {"decision": "decline", "approver": first.to, "code": first.code,
            "comment": "needs a load test first"}


def test_a_declined_review_rejects_the_change_and_updates_the_ticket(stack: Stack) -> None:
    with ScriptedApprover(stack.outbox, decline_review).start(interval=0.2):
        with pytest.raises(ChangeStopped, match="CHG-101 rejected"):
            change_request("CHG-101")
    record = stack.adapters.change_log.record("CHG-101")
    assert record is not None and (record.state, record.outcome) == ("rejected", "rejected")
    ticket = stack.adapters.tickets
    assert ticket.get("CHG-101").status == "rejected"
    assert "needs a load test first" in ticket.comments("CHG-101")[-1]
    types = [e.type for e in stack.adapters.change_log.events("CHG-101")]
    assert "staging_started" not in types and "deployment_started" not in types


def deploys(stack: Stack, change_id: str) -> int:
    return sum(1 for e in stack.adapters.change_log.events(change_id)
               if e.type == "effect_started" and e.payload["action"] == "deploy-production")


def test_running_a_finished_change_again_never_deploys_again(
        stack: Stack, approver: ScriptedApprover) -> None:
    first = change_request("CHG-101")
    again = change_request("CHG-101")
    assert first == again
    assert deploys(stack, "CHG-101") == 1
    assert len(approver.answers) == 4  # nobody was asked twice


def test_a_wait_that_times_out_is_a_rejection_recorded_as_expired(tmp_path: Path) -> None:
    with embedded_stack(tmp_path, port=0, approval_poll_seconds=1,
                        approval_timeout_hours=3 / 3600) as stack:
        with pytest.raises(ChangeStopped, match="decision expired"):
            change_request("CHG-101")
        record = stack.adapters.change_log.record("CHG-101")
        assert record is not None and record.outcome == "expired"
        expired = [e for e in stack.adapters.change_log.events("CHG-101")
                   if e.type == "approval_expired"]
        assert expired[0].payload["role"] == "engineering_lead"
        assert stack.adapters.tickets.get("CHG-101").status == "rejected"
        (told,) = [n for n in read_outbox(stack.outbox) if n["kind"] == "expired"]
        assert told["to"] == "alice" and told["subject"].startswith(  # the author
            "CHG-101 expired: nobody decided as engineering_lead (review, asked: erin) before ")


def slow_deploys(stack: Stack, seconds: float) -> None:
    path = stack.settings.config_dir / "services.yaml"
    catalog = yaml.safe_load(path.read_text())
    deploy = catalog["services"]["sample"]["environments"]["production"]["deploy"]
    deploy["argv"] += ["--settle-seconds", str(seconds)]
    path.write_text(yaml.safe_dump(catalog))
    stack.adapters.config = load_config(stack.settings.config_dir)


def test_two_changes_to_one_service_never_deploy_at_once(
        stack: Stack, approver: ScriptedApprover) -> None:
    slow_deploys(stack, 1.5)
    results: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda k=key: results.update({k: change_request(k)}))
               for key in ("CHG-101", "CHG-102")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert {k: r["outcome"] for k, r in results.items()} == {"CHG-101": "succeeded",
                                                            "CHG-102": "succeeded"}
    spans = []
    for key in ("CHG-101", "CHG-102"):
        events = stack.adapters.change_log.events(key)
        start = next(e.at for e in events if e.type == "deployment_started")
        end = next(e.at for e in events if e.type in ("verification_passed",
                                                      "verification_failed"))
        spans.append((start, end))
    spans.sort()
    assert spans[0][1] <= spans[1][0], f"deployments overlapped: {spans}"


def kill_processes_mentioning(*words: str) -> None:
    """SIGKILL every process whose command line holds all `words` (the orphaned deploy)."""
    for pid in processes_mentioning(*words):
        os.kill(pid, signal.SIGKILL)


def test_a_run_killed_mid_deploy_verifies_instead_of_deploying_again(
        stack: Stack, approver: ScriptedApprover) -> None:
    slow_deploys(stack, 60)  # the new version is live; the command is still "rolling out"
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "CHANGEFLOW_CONFIG_DIR": str(stack.settings.config_dir),
           "CHANGEFLOW_VAR_DIR": str(stack.settings.var_dir),
           "CHANGEFLOW_TICKETS_DIR": str(stack.settings.resolved_tickets_dir),
           "CHANGEFLOW_APPROVAL_POLL_SECONDS": "1"}
    run = subprocess.Popen(
        [sys.executable, "-c", "from flows.change_request import change_request; "
         "change_request('CHG-101')"], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while deploys(stack, "CHG-101") == 0:
        assert run.poll() is None and time.monotonic() < deadline, "never reached deploy"
        time.sleep(0.2)
    time.sleep(0.5)  # inside the deploy command now
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    kill_processes_mentioning(str(stack.settings.var_dir), "--settle-seconds")
    # The killed run's slot lease would lapse after 60 s (the server's minimum); free it
    # now, as that expiry would.
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(
            "deploy-sample", GlobalConcurrencyLimitUpdate(active_slots=0))
    assert stack.adapters.change_log.record("CHG-101").state == "deploying"  # type: ignore[union-attr]
    result = change_request("CHG-101")
    assert result["outcome"] == "succeeded"
    assert deploys(stack, "CHG-101") == 1  # found the intent, did not deploy blind
    recovered = [e for e in stack.adapters.change_log.events("CHG-101")
                 if e.type == "deployment_succeeded"]
    assert recovered[0].payload["recovered"] is True


def test_a_request_that_expired_while_suspended_is_recorded_by_the_next_run(
        stack: Stack) -> None:
    a = stack.adapters
    submit_change.fn(a, "CHG-101")
    past = datetime.now(UTC) - timedelta(minutes=1)
    a.change_log.append("CHG-101", "approval_requested", "changeflow", {
        "role": "engineering_lead", "purpose": "review", "run_id": "an-earlier-run",
        "salt": "s", "digests": {"erin": "x"}, "eligible": ["erin"],
        "expires_at": past.isoformat()}, past - timedelta(hours=72))
    with pytest.raises(ChangeStopped, match="engineering_lead decision expired"):
        change_request("CHG-101")
    record = a.change_log.record("CHG-101")
    assert record is not None and record.outcome == "expired"
    assert a.tickets.get("CHG-101").status == "rejected"
    told = [(n["to"], n["kind"]) for n in read_outbox(stack.outbox)]
    assert told == [("alice", "expired")]  # the author hears; nobody was asked again


def test_a_failed_rollback_is_a_p1_incident_paging_owner_and_on_call(
        stack: Stack, approver: ScriptedApprover) -> None:
    path = stack.settings.config_dir / "services.yaml"
    catalog = yaml.safe_load(path.read_text())
    catalog["services"]["sample"]["environments"]["production"]["rollback"]["argv"] = [
        "{python}", "-c", "import sys; print('registry unreachable'); sys.exit(3)"]
    path.write_text(yaml.safe_dump(catalog))
    stack.adapters.config = load_config(stack.settings.config_dir)
    tickets = stack.settings.resolved_tickets_dir
    ticket = yaml.safe_load((tickets / "CHG-103.yaml").read_text())
    ticket["rollback_plan"]["owner"] = "bob"
    (tickets / "CHG-106.yaml").write_text(yaml.safe_dump(ticket))
    result = change_request("CHG-106")
    assert (result["outcome"], result["incidents"]) == ("failed", ["INC-CHG-106-1"])
    events = stack.adapters.change_log.events("CHG-106")
    failed = next(e for e in events if e.type == "rollback_failed")
    assert failed.payload["exit_code"] == 3
    incident = next(e for e in events if e.type == "incident_opened")
    assert incident.payload["priority"] == 1
    pages = {n["to"] for n in read_outbox(stack.outbox) if n["kind"] == "page"}
    assert pages == {"bob", "oscar"}  # the rollback owner and on-call


def engineer_busy(notices: list[CodeNotice], attempt: int) -> dict[str, Any]:
    first = notices[0]
    busy = first.purpose == "availability" and first.role == "engineer"
    return {"decision": "decline" if busy else "approve", "approver": first.to,
            "code": first.code, "comment": "on leave today" if busy else ""}


def test_a_declined_availability_stops_the_deploy_until_confirmed(stack: Stack) -> None:
    with ScriptedApprover(stack.outbox, engineer_busy).start(interval=0.2):
        with pytest.raises(ChangeStopped, match="the engineer \\(alice\\) is not available"):
            change_request("CHG-101")
    assert deploys(stack, "CHG-101") == 0
    with ScriptedApprover(stack.outbox).start(interval=0.2):
        assert change_request("CHG-101")["outcome"] == "succeeded"
    answers = [(e.payload["role"], e.payload["decision"])
               for e in stack.adapters.change_log.events("CHG-101")
               if e.type == "availability_confirmed"]
    assert answers == [("engineer", "decline"), ("engineer", "approve"), ("reviewer", "approve")]
    assert deploys(stack, "CHG-101") == 1
