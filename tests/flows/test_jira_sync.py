"""jira-sync, and a lifecycle whose tickets and approvals live in Jira (the local Jira)."""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun, StateType

import tasks.tickets
from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack, embedded_stack
from config.jira import JiraApprovals, JiraMapping
from config.loader import load_config
from config.settings import PROJECT_ROOT, Settings
from domain.models import ChangeRequest, IncidentFacts
from flows.change_request import change_request
from flows.jira_sync import jira_sync
from integrations.factory import open_adapters, open_tickets
from integrations.jira_tickets import JiraChangeTickets
from integrations.ports import TicketSystemError
from integrations.sync_state import SyncState
from tasks.common import ChangeStopped
from tasks.intake import ChangeRefused, submit_change
from tasks.sync import WATERMARK
from tests.fakes.jira_server import FakeJira
from tests.support.jira import JiraProject, jira_project, with_evidence_values
from tests.support.waiting import wait_for

READY = "Ready for change"
JSM = JiraApprovals(mode="jsm", names={"engineering_lead": "Lead approval",
                                       "qa": "QA approval"})


@pytest.fixture
def jira(tmp_path: Path) -> Iterator[tuple[Stack, JiraProject]]:
    """The embedded stack with its tickets in a local Jira (Cloud), approvals from JSM."""
    with FakeJira(mode="cloud") as fake:
        mapping = with_evidence_values(JiraMapping(approvals=JSM))
        project = jira_project(fake, mapping)
        with embedded_stack(tmp_path, port=0, broken=("2.1.0@production",),
                            approval_poll_seconds=0.2, jira_mapping=mapping,
                            **project.settings()) as stack:
            change_request.to_deployment(name="change-request").apply()
            yield stack, project


def runs_of(stack: Stack, key: str) -> list[FlowRun]:
    """The runs this test's sync started for `key` (keys repeat across tests' Jiras)."""
    ids = [UUID(e.payload["flow_run_id"]) for e in stack.adapters.change_log.events(key)
           if e.type == "run_started"]
    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=ids), tags=FlowRunFilterTags(all_=[f"ticket:{key}"])))
    return found if ids else []


def test_a_full_sync_records_each_ticket_once_and_an_idle_sync_costs_one_search(
        jira: tuple[Stack, JiraProject]) -> None:
    stack, project = jira
    keys = [project.create_change("CHG-101", summary=f"change {i}") for i in range(3)]
    first = jira_sync()
    assert (first["seen"], first["changed"], first["started"]) == (3, 3, [])
    for key in keys:
        (snapshot,) = stack.adapters.change_log.events(key)
        assert snapshot.type == "ticket_snapshot" and snapshot.payload["status"] == "Open"
        record = stack.adapters.change_log.record(key)
        assert record is not None and record.state == "draft"
    events = stack.adapters.change_log.count()
    project.fake.clear_requests()
    idle = jira_sync()
    assert idle["requests"] == 1 and project.fake.count() == 1  # one search, nothing else
    assert idle["changed"] == 0 and stack.adapters.change_log.count() == events


def test_an_edited_ticket_is_snapshotted_again(jira: tuple[Stack, JiraProject]) -> None:
    stack, project = jira
    key = project.create_change("CHG-101")
    jira_sync()
    project.fake.update_fields(key, {project.field("version"): "1.1.1"},
                               as_user=project.users["alice"])
    assert jira_sync()["changed"] == 1
    versions = [e.payload["fields"]["version"] for e in stack.adapters.change_log.events(key)]
    assert versions == ["1.1.0", "1.1.1"]


def test_a_ready_ticket_starts_its_lifecycle_once_per_readiness(
        jira: tuple[Stack, JiraProject]) -> None:
    stack, project = jira
    key = project.create_change("CHG-101")
    alice = project.users["alice"]
    project.fake.transition(key, f"To {READY}", alice)
    assert jira_sync()["started"] == [key]
    (run,) = runs_of(stack, key)
    assert run.parameters == {"ticket_key": key}
    project.fake.add_comment(key, "looks good", alice)  # updated, but the same readiness
    assert jira_sync()["started"] == []
    assert jira_sync(full=True)["started"] == []  # a full re-read does not start it again
    assert len(runs_of(stack, key)) == 1
    project.fake.transition(key, "To Open", alice)
    project.fake.transition(key, f"To {READY}", alice)
    assert jira_sync()["started"] == [key]
    assert len(runs_of(stack, key)) == 2
    started = [e for e in stack.adapters.change_log.events(key) if e.type == "run_started"]
    assert len(started) == 2 and started[0].payload["revision"] != started[1].payload["revision"]


def test_a_ticket_cancelled_in_jira_cancels_its_runs(jira: tuple[Stack, JiraProject]) -> None:
    stack, project = jira
    key = project.create_change("CHG-101")
    project.fake.transition(key, f"To {READY}", project.users["alice"])
    jira_sync()
    project.fake.transition(key, "To Cancelled", project.users["alice"])
    assert jira_sync()["cancelled"] == [key]
    (run,) = runs_of(stack, key)
    assert run.state is not None and run.state.type is StateType.CANCELLED
    record = stack.adapters.change_log.record(key)
    assert record is not None and record.outcome == "cancelled"


def test_transient_failures_are_retried_and_nothing_is_recorded_twice(
        jira: tuple[Stack, JiraProject]) -> None:
    stack, project = jira
    for i in range(120):
        project.fake.create_issue("CHG", {"summary": f"change {i}"})
    soon = datetime.now(UTC) + timedelta(seconds=1)
    project.fake.fail(r"/search", status=429, retry_after=format_datetime(soon, usegmt=True))
    project.fake.fail(r"/search", status=503)
    project.fake.stall(r"/search", 3)  # beyond the 2 s timeout of every request
    project.fake.malformed(r"/search")
    project.fake.fail(r"/search", status=429, retry_after="1")
    result = jira_sync()
    assert (result["seen"], result["changed"], result["pages"]) == (120, 120, 2)
    assert stack.adapters.change_log.count() == 120  # one snapshot per ticket
    answered = [r.status for r in project.fake.requests if "/search" in r.path]
    assert answered[:6] == [429, 503, 200, 200, 429, 200]  # the stall answered late


def test_a_refused_search_fails_the_sync_with_jiras_message_and_keeps_the_watermark(
        jira: tuple[Stack, JiraProject]) -> None:
    stack, project = jira
    project.create_change("CHG-101")
    project.fake.fail(r"/search", status=400, body={
        "errorMessages": ["Error in the JQL Query: the field 'updated' is not searchable."],
        "errors": {}})
    with pytest.raises(TicketSystemError, match="the field 'updated' is not searchable"):
        jira_sync()
    assert project.fake.count(path_regex="/search") == 1  # not retried
    assert SyncState(stack.adapters.change_log.engine).get([WATERMARK]) == {}
    assert jira_sync()["changed"] == 1  # and the next run reads everything


def test_a_field_renamed_in_jira_stops_the_sync_naming_it(tmp_path: Path) -> None:
    with FakeJira(mode="datacenter") as fake:
        project = jira_project(fake)
        fake.rename_field("Risk assessment", "Risk")
        with pytest.raises(TicketSystemError, match="fields.risk_assessment: Jira has no field "
                           "named 'Risk assessment'"):
            with embedded_stack(tmp_path, port=0, **project.settings()):
                pass


def erin_and_quinn_approve_in_jira(project: JiraProject, key: str) -> None:
    for name, who in (("Lead approval", "erin"), ("QA approval", "quinn")):
        approval = project.fake.add_approval(key, name, [project.users[who]])
        project.fake.answer_approval(key, approval, project.users[who], "approve")


ROLES_IN_JIRA = (("Lead approval", "erin", "engineering_lead"), ("QA approval", "quinn", "qa"))


@contextmanager
def approving_in_jira(stack: Stack, project: JiraProject, key: str) -> Iterator[None]:
    """Erin and quinn approve in Jira each as soon as changeflow asks; the sync hands over."""
    stop, answered = threading.Event(), set()

    def loop() -> None:
        while not stop.wait(0.3):
            for name, who, role in ROLES_IN_JIRA:
                if role not in answered and requested(stack, key, role):
                    approval = project.fake.add_approval(key, name, [project.users[who]])
                    project.fake.answer_approval(key, approval, project.users[who], "approve")
                    answered.add(role)
                    jira_sync()

    thread = threading.Thread(target=contextvars.copy_context().run, args=(loop,),
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture
def availability(jira: tuple[Stack, JiraProject]) -> Iterator[ScriptedApprover]:
    """Answers the Prefect forms (availability) for the Jira stack."""
    with ScriptedApprover(jira[0].outbox).start(interval=0.2) as scripted:
        yield scripted


def test_a_change_approved_in_jira_goes_through_and_jira_shows_the_outcome(
        jira: tuple[Stack, JiraProject], availability: ScriptedApprover) -> None:
    """Approvals given before changeflow asked do not count; those given after do."""
    stack, project = jira
    key = project.create_change("CHG-101")
    erin_and_quinn_approve_in_jira(project, key)  # before anyone was asked
    done: dict[str, Any] = {}
    run = threading.Thread(target=lambda: done.update(change_request(key)))
    run.start()
    try:
        wait_for(lambda: any(e.type == "approval_attempt_failed"
                             for e in stack.adapters.change_log.events(key)),
                 "the early decision to be refused")
        (early,) = [e for e in stack.adapters.change_log.events(key)
                    if e.type == "approval_attempt_failed"]
        assert (early.payload["role"], early.payload["claimed"]) == ("engineering_lead", "erin")
        assert "before changeflow asked at" in early.payload["reason"]
        assert early.payload["account"] == project.users["erin"].id
        jira_sync()  # the same early approval is not recorded twice
        with approving_in_jira(stack, project, key):  # asked now: each decides again
            run.join(timeout=120)
    finally:
        run.join(timeout=120)
    assert done["outcome"] == "succeeded"
    events = stack.adapters.change_log.events(key)
    approvals = [e for e in events
                 if e.type == "approval_recorded" and e.payload["channel"] == "jira-jsm"]
    assert [(e.payload["role"], e.payload["person_id"]) for e in approvals] == [
        ("engineering_lead", "erin"), ("qa", "quinn")]
    assert {e.payload["ref"] for e in approvals}.isdisjoint(
        {e.payload["ref"] for e in events if e.type == "approval_attempt_failed"})
    issue = project.fake.issue(key)
    assert issue["fields"]["status"]["name"] == "Closed"
    linked = {r.body["object"]["title"] for r in project.fake.requests
              if r.method == "POST" and r.path.endswith("/remotelink")}
    assert {"Pull request", "CI run", "SAST report"} <= linked
    assert any("closed with outcome succeeded" in c["body"]
               for c in issue["fields"]["comment"]["comments"])


def test_an_approval_in_jira_by_someone_without_the_role_is_refused_by_the_policy(
        jira: tuple[Stack, JiraProject]) -> None:
    stack, project = jira
    key = project.create_change("CHG-101")
    approval = project.fake.add_approval(key, "Lead approval", [project.users["bob"]])
    project.fake.answer_approval(key, approval, project.users["bob"], "approve")
    stack.settings.approval_timeout_hours = 0.001  # about 4 s: then the wait expires
    with pytest.raises(ChangeStopped, match="the engineering_lead decision expired"):
        change_request(key)
    (refused,) = [e for e in stack.adapters.change_log.events(key)
                  if e.type == "approval_attempt_failed"]
    assert refused.payload["reason"] == "Bob Nguyen (bob) does not hold role 'engineering_lead'"
    assert not [e for e in stack.adapters.change_log.events(key)
                if e.type == "approval_recorded"]


def requested(stack: Stack, key: str, role: str) -> bool:
    """Whether changeflow has asked for `role`'s decision on the change."""
    return any(e.type == "approval_requested" and e.payload["role"] == role
               for e in stack.adapters.change_log.events(key))


def test_the_token_can_come_from_a_prefect_secret_block(tmp_path: Path) -> None:
    with FakeJira(mode="cloud") as fake:
        project = jira_project(fake)
        Secret(value=project.service.token).save("changeflow-test-jira-token", overwrite=True)
        settings = Settings(config_dir=PROJECT_ROOT / "config", var_dir=tmp_path,
                            tickets="jira", jira_url=fake.url, jira_email=project.service.email,
                            jira_token_block="changeflow-test-jira-token")
        tickets = open_tickets(settings, load_config(settings.config_dir))
        assert isinstance(tickets, JiraChangeTickets)
        assert tickets.account == project.service.id


def test_jira_down_at_close_leaves_the_change_open_until_a_later_run_tells_it_once(
        jira: tuple[Stack, JiraProject], availability: ScriptedApprover,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks.tickets, "BACKOFF_SECONDS", (0.01,) * 5)
    stack, project = jira
    key = project.create_change("CHG-101")
    project.fake.fail(r"/transitions$", 503, times=6, method="POST")  # every retry of close
    with approving_in_jira(stack, project, key), pytest.raises(TicketSystemError,
                                                                match="503"):
        change_request(key)
    log = stack.adapters.change_log
    record = log.record(key)
    assert record is not None and record.state == "succeeded"  # deployed and verified, open
    assert project.fake.issue(key)["fields"]["status"]["name"] != "Closed"

    assert change_request(key)["outcome"] == "succeeded"  # Jira is back
    types = [e.type for e in log.events(key)]
    assert types.count("deployment_started") == 1 and types.count("change_closed") == 1
    issue = project.fake.issue(key)
    assert issue["fields"]["status"]["name"] == "Closed"
    closing = [c for c in issue["fields"]["comment"]["comments"]
               if "closed with outcome succeeded" in c["body"]]
    assert len(closing) == 1


@flow
def submitted(key: str) -> ChangeRequest:
    """Only the submit step of a change, as `change-request` starts it."""
    with open_adapters() as a:
        return submit_change(a, key)


@pytest.mark.parametrize(("priority", "status", "refusal"), [
    ("Highest", "Open", None),
    ("High", "Open", "is a P2 incident; an emergency change is for a P1 incident"),
    ("Highest", "Done", "is already resolved; an emergency change is for an open P1"),
    (None, "Open", "has no priority changeflow knows (jira.yaml incidents.priorities)"),
])
def test_an_emergencys_incident_is_read_from_jira_not_from_the_ticket(
        jira: tuple[Stack, JiraProject], priority: str | None, status: str,
        refusal: str | None) -> None:
    stack, project = jira
    fields = {"summary": "Checkout fails for every customer"}
    incident = project.fake.create_issue("INC", {**fields, "priority": priority}
                                         if priority else fields, status=status)
    key = project.create_change("CHG-201", incident_ref=incident)
    if refusal is not None:
        with pytest.raises(ChangeRefused, match=re.escape(refusal)):
            submitted(key)
        return
    change = submitted(key)
    assert change.incident == IncidentFacts(key=incident, source="ticket_system", priority=1,
                                            open=True, summary=fields["summary"])


def test_an_incident_reference_that_is_no_incident_is_refused(
        jira: tuple[Stack, JiraProject]) -> None:
    stack, project = jira
    other = project.create_change("CHG-101")  # a change, not an incident
    key = project.create_change("CHG-201", incident_ref=other)
    with pytest.raises(ChangeRefused, match=f"incident_ref: {other} is not an incident the "
                                            "ticket system knows: .* not an Incident of INC"):
        submitted(key)
