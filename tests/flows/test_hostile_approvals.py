"""Approvals that must fail do, through the real lifecycle, and the change does not move.

Each case answers a waiting form the way an attacker at the Prefect UI could, with the
codes the outbox holds, and proves the precise refusal: by the Prefect server when the
form's schema does not list the person (only the eligible are offered), or recorded by
changeflow as `approval_attempt_failed` with its reason (a code bound to another run or
role, the domain's judgement of a verbal approval). The refused answer records no
decision and leaves the change's state as it was; the right person's answer then still
counts and the change completes. An expired code, and a decision sent after the wait
timed out, leave the change rejected as expired with no decision recorded.

The domain's judgement of recorded approvals (author, role, shared account, one person
per role) is proven case by case in tests/unit/test_approvals.py; here the lifecycle
never asks anyone whose decision that judgement would refuse.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import NotPausedError
from prefect.flow_runs import resume_flow_run
from prefect.input.actions import read_flow_run_input

from changeflow.approver import CodeNotice, ScriptedApprover, code_notices
from changeflow.stack import Stack
from config.loader import load_config
from config.settings import PROJECT_ROOT
from domain.models import ChangeEvent
from flows.change_request import change_request
from integrations.factory import installed
from integrations.outbox import read_outbox
from tasks.common import ChangeStopped
from tasks.intake import ChangeRefused

Answer = dict[str, Any]
DECISIONS = ("approval_recorded", "availability_confirmed")
NOT_SENT = "ZZZZ-ZZZZ"
"""A code in the right shape that nobody was sent."""


@dataclass
class Form:
    """A form a run is waiting on, and the codes sent for its decision, by person."""

    run_id: UUID
    codes: dict[str, str]

    def submit(self, answer: Answer) -> str | None:
        """Resume the run with `answer`; the server's refusal, or None if it took it."""
        try:
            resume_flow_run(self.run_id, run_input=answer)
        except RuntimeError as refused:
            return str(refused)
        return None

    def approve(self, person: str) -> str | None:
        """Approve as `person` with the code they were sent."""
        return self.submit(decide(person, self.codes[person]))


def decide(person: str, code: str) -> Answer:
    return {"decision": "approve", "approver": person, "code": code, "comment": ""}


def form_key(role: str, purpose: str, attempt: int) -> str:
    """The input schema's key of a form: its request and the refusals before it."""
    return f"paused-{purpose}-{role}-{attempt}".lower().replace("_", "-") + "-schema"


class Run:
    """`change-request` for one ticket in a thread, as the engineer started it."""

    def __init__(self, stack: Stack, key: str) -> None:
        self.stack, self.key = stack, key
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=contextvars.copy_context().run,
                                       args=(self._run,), daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = change_request(self.key)
        except BaseException as exc:  # noqa: B036 - handed to the test thread
            self.error = exc

    def form(self, role: str, purpose: str, attempt: int = 0, timeout: float = 60) -> Form:
        """Wait until the run shows the form for `role` and `purpose` after `attempt`
        refused answers."""
        key = form_key(role, purpose, attempt)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.thread.is_alive(), f"the run ended: {self.error or self.result}"
            with get_client(sync_client=True) as client:
                paused = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(
                        any_=[StateType.PAUSED]))))
            for run in paused:
                keyset = run.state.state_details.run_input_keyset if run.state else None
                if (run.parameters.get("ticket_key") == self.key and keyset
                        and keyset["schema"] == key
                        and read_flow_run_input(key, flow_run_id=run.id) is not None):
                    return Form(run.id, {n.to: n.code for n in code_notices(self.stack.outbox)
                                         if (n.run_id, n.role, n.purpose)
                                         == (str(run.id), role, purpose)})
            time.sleep(0.05)
        raise AssertionError(f"{self.key} never showed {key}")

    def finish(self, timeout: float = 90) -> dict[str, Any]:
        """The run's result once it ends; raises what it raised."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.key} did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@contextmanager
def running(stack: Stack, key: str) -> Iterator[Run]:
    """A `Run`; one left waiting by a failed test is approved through to its end."""
    run = Run(stack, key)
    try:
        yield run
    finally:
        if run.thread.is_alive():
            with ScriptedApprover(stack.outbox).start(interval=0.2):
                run.thread.join(60)


def finish_approving(stack: Stack, run: Run) -> dict[str, Any]:
    """Let every further form be answered by its first eligible person, to the end."""
    with ScriptedApprover(stack.outbox).start(interval=0.05):
        return run.finish()


def edit_ticket(stack: Stack, key: str, **changes: Any) -> None:
    path = stack.settings.resolved_tickets_dir / f"{key}.yaml"
    fields = yaml.safe_load(path.read_text())
    fields.update(changes)
    path.write_text(yaml.safe_dump(fields, sort_keys=False))


def give_role(stack: Stack, person: str, role: str) -> None:
    path = stack.settings.config_dir / "roster.yaml"
    roster = yaml.safe_load(path.read_text())
    next(p for p in roster["people"] if p["id"] == person)["roles"].append(role)
    path.write_text(yaml.safe_dump(roster, sort_keys=False))
    stack.adapters.config = load_config(stack.settings.config_dir)


def events(stack: Stack, key: str, *types: str) -> list[ChangeEvent]:
    return [e for e in stack.adapters.change_log.events(key) if not types or e.type in types]


def state(stack: Stack, key: str) -> str:
    record = stack.adapters.change_log.record(key)
    assert record is not None
    return record.state


# -- the cases ---------------------------------------------------------------------------

Build = Callable[[Form, list[CodeNotice]], Answer]


def as_person(person: str) -> Build:
    """Claim to be `person`, with their code if they were sent one (else a made-up one)."""
    return lambda form, sent: decide(person, form.codes.get(person, NOT_SENT))


def erins_code(change_id: str, role: str) -> Build:
    """Erin, with the code she was sent for `role` on `change_id`'s run."""
    def build(form: Form, sent: list[CodeNotice]) -> Answer:
        code = next(n.code for n in sent if (n.to, n.change_id, n.role)
                    == ("erin", change_id, role))
        return decide("erin", code)
    return build


def author_is_a_second_lead(stack: Stack) -> None:
    give_role(stack, "oscar", "engineering_lead")
    edit_ticket(stack, "CHG-101", author="erin",
                evidence={"code_review": {"reviewers": ["alice", "bob"]},
                          "ci": {"status": "passed", "failed_tests": 0},
                          "sast": {"critical": 0, "high": 0}})


def a_declined_run_of_chg_102(stack: Stack) -> None:
    """Run A: CHG-102 asks erin for the review; she declines it with her code."""
    with running(stack, "CHG-102") as run:
        form = run.form("engineering_lead", "review")
        declined = {**decide("erin", form.codes["erin"]), "decision": "decline",
                    "comment": "not this week"}
        assert form.submit(declined) is None
        with pytest.raises(ChangeStopped, match="CHG-102 rejected in review"):
            run.finish()


def verbal(approver: str, recorder: str, **extra: str) -> Build:
    return lambda form, sent: {"approver": approver, "recorder": recorder,
                               "code": form.codes.get(recorder, NOT_SENT), "channel": "phone",
                               **extra}


@dataclass(frozen=True)
class Case:
    """A form, a hostile answer to it, its refusal, and the right answer after."""

    name: str
    key: str
    role: str
    purpose: str
    hostile: Build
    refusal: str
    """The reason of the `approval_attempt_failed` changeflow recorded."""
    kind: str
    """Its kind: `not_sent`, `wrong_code`, `refused` (a right code, spent)."""
    right: Build
    decided_by: str
    setup: Callable[[Stack], None] = lambda stack: None
    before: list[tuple[str, str, str]] = field(default_factory=list)
    """(role, purpose, person): forms answered rightly on the way to the hostile one."""


SPENT = "; the code is spent and a new one was sent"
ERIN_AS_LEAD_AND_RECORDER = (
    "Erin Lead (erin)'s verbal approval as 'engineering_lead' must be recorded by someone "
    "else, who heard it (the approver confirms it afterwards)" + SPENT)
ALICE_RECORDS_HER_OWN = (
    "Carol Chen (carol)'s verbal approval as 'ciso' cannot be recorded by alice, who wrote "
    "the change: two people other than its writers must take part (separation of duties)")
WRONG_CODE = "the code is wrong for this person, run and role"

CASES = [
    Case("the author approving their own change", "CHG-101", "engineering_lead", "review",
         as_person("erin"), "Erin Lead (erin) is the change's author and cannot approve it as "
         "'engineering_lead' (separation of duties)", "not_sent", as_person("oscar"),
         "oscar", setup=author_is_a_second_lead),
    Case("a person without the role", "CHG-101", "engineering_lead", "review",
         as_person("bob"), "Bob Nguyen (bob) does not hold role 'engineering_lead'",
         "not_sent", as_person("erin"), "erin"),
    Case("a shared account", "CHG-101", "engineering_lead", "review",
         as_person("deploybot"), "Deploy Bot (deploybot) is a shared account and cannot "
         "approve as 'engineering_lead' (every approval must be attributable to one person)",
         "not_sent", as_person("erin"), "erin",
         setup=lambda stack: give_role(stack, "deploybot", "engineering_lead")),
    Case("the same person for a second role", "CHG-101", "qa", "staging-sign-off",
         as_person("erin"), "Erin Lead (erin) already approved as 'engineering_lead' and "
         "cannot also approve as 'qa' (one person per role)", "not_sent", as_person("quinn"),
         "quinn", setup=lambda stack: give_role(stack, "erin", "qa"),
         before=[("engineering_lead", "review", "erin")]),
    Case("the same person approving and recording a verbal approval", "CHG-201", "ciso",
         "verbal-approval", verbal("erin", "erin", fallback_reason="the CISO is on a plane"),
         ERIN_AS_LEAD_AND_RECORDER, "refused", verbal("carol", "oscar"), "carol"),
    Case("the author recording the verbal approval of their own change", "CHG-201", "ciso",
         "verbal-approval", verbal("carol", "alice"), ALICE_RECORDS_HER_OWN, "not_sent",
         verbal("carol", "erin"), "carol"),
    Case("a code replayed from another run", "CHG-101", "engineering_lead", "review",
         erins_code("CHG-102", "engineering_lead"), WRONG_CODE, "wrong_code",
         as_person("erin"), "erin", setup=a_declined_run_of_chg_102),
    Case("a code for another role", "CHG-101", "reviewer", "availability",
         erins_code("CHG-101", "engineering_lead"), WRONG_CODE, "wrong_code",
         as_person("erin"), "erin", before=[("engineering_lead", "review", "erin"),
                                            ("qa", "staging-sign-off", "quinn"),
                                            ("engineer", "availability", "alice")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name.replace(" ", "-") for c in CASES])
def test_an_approval_that_must_fail_is_refused_and_the_right_one_still_counts(
        stack: Stack, case: Case) -> None:
    case.setup(stack)
    with running(stack, case.key) as run:
        for role, purpose, person in case.before:
            assert run.form(role, purpose).approve(person) is None
        form = run.form(case.role, case.purpose)
        seen, was = len(events(stack, case.key)), state(stack, case.key)
        assert form.submit(case.hostile(form, code_notices(stack.outbox))) is None
        form = run.form(case.role, case.purpose, attempt=1)  # shown again
        failed, *after = events(stack, case.key)[seen:]
        assert (failed.type, failed.payload["role"], failed.payload["reason"],
                failed.payload["kind"]) == ("approval_attempt_failed", case.role,
                                            case.refusal, case.kind)
        assert [e.type for e in after] == ["notice_delivered"] + (
            ["notice_delivered", "approval_codes_reissued"] if case.kind == "refused" else [])
        *_, told = [n for n in read_outbox(stack.outbox) if n["kind"] == "code-refused"]
        assert told["to"] == failed.payload["claimed"]  # who the answer claimed to be
        assert f"was refused: {case.refusal}." in told["body"]
        assert state(stack, case.key) == was
        assert form.submit(case.right(form, code_notices(stack.outbox))) is None
        assert finish_approving(stack, run)["outcome"] == "succeeded"
    decided = [e.payload["person_id"] for e in events(stack, case.key, *DECISIONS)
               if (e.payload.get("requested_role", e.payload["role"]), e.payload["purpose"])
               == (case.role, case.purpose)]
    assert decided == [case.decided_by]
    sent_to = {n.to for n in code_notices(stack.outbox) if n.change_id == case.key
               and (n.role, n.purpose) == (case.role, case.purpose)}
    assert sent_to == set(form.codes) and "deploybot" not in sent_to


def test_a_change_by_the_only_lead_is_never_put_to_its_author(stack: Stack) -> None:
    edit_ticket(stack, "CHG-101", author="erin")
    with pytest.raises(ChangeStopped, match=r"nobody in the roster may decide as "
                                            r"'engineering_lead' for CHG-101 \(the author"):
        change_request("CHG-101")
    assert events(stack, "CHG-101", "approval_requested", *DECISIONS) == []
    assert code_notices(stack.outbox) == []


def test_a_right_code_in_a_refused_answer_is_spent_and_a_new_one_sent(stack: Stack) -> None:
    with running(stack, "CHG-201") as run:
        form = run.form("ciso", "verbal-approval")
        spent = form.codes["erin"]
        assert form.submit(verbal("erin", "erin")(form, [])) is None  # refused by the rules
        form = run.form("ciso", "verbal-approval", attempt=1)
        assert form.codes["erin"] != spent  # a new code was sent to erin
        replay = {**verbal("carol", "erin")(form, []), "code": spent}
        assert form.submit(replay) is None
        form = run.form("ciso", "verbal-approval", attempt=2)
        assert form.submit(verbal("carol", "erin")(form, [])) is None
        assert finish_approving(stack, run)["outcome"] == "succeeded"
    failed = [(e.payload["kind"], e.payload["reason"])
              for e in events(stack, "CHG-201", "approval_attempt_failed")]
    assert failed == [("refused", ERIN_AS_LEAD_AND_RECORDER), ("wrong_code", WRONG_CODE)]
    (reissued,) = events(stack, "CHG-201", "approval_codes_reissued")
    assert set(reissued.payload["digests"]) == {"erin"} and not reissued.payload["withdrawn"]
    (recorded,) = events(stack, "CHG-201", "approval_recorded")
    assert (recorded.payload["person_id"], recorded.payload["recorded_by"]) == ("carol", "erin")


def test_repeated_wrong_codes_withdraw_every_code_and_tell_the_ciso(stack: Stack) -> None:
    limit = load_config(stack.settings.config_dir).policy.approval_codes.max_wrong_codes
    with running(stack, "CHG-101") as run:
        form = run.form("engineering_lead", "review")
        first = form.codes["erin"]
        for attempt in range(limit):
            assert run.form("engineering_lead", "review", attempt).submit(
                decide("erin", f"GUES-S{attempt:03d}")) is None
        form = run.form("engineering_lead", "review", attempt=limit)
        assert form.codes["erin"] != first
        assert form.submit(decide("erin", first)) is None  # withdrawn: no longer works
        form = run.form("engineering_lead", "review", attempt=limit + 1)
        assert form.approve("erin") is None
        assert finish_approving(stack, run)["outcome"] == "succeeded"
    kinds = [e.payload["kind"] for e in events(stack, "CHG-101", "approval_attempt_failed")]
    assert kinds == ["wrong_code"] * (limit + 1)
    (withdrawn,) = events(stack, "CHG-101", "approval_codes_reissued")
    assert withdrawn.payload["withdrawn"] and set(withdrawn.payload["digests"]) == {"erin"}
    alarms = [n for n in read_outbox(stack.outbox) if n["kind"] == "integrity-alarm"]
    assert [n["to"] for n in alarms] == ["carol"]
    assert f"{limit} wrong codes were entered" in alarms[0]["body"]
    (told,) = events(stack, "CHG-101", "notification_sent")
    assert told.payload["to"] == ["carol"]


def test_an_answer_that_does_not_fit_the_form_is_recorded_and_the_form_shown_again(
        stack: Stack) -> None:
    """JSON Schema does not check a date-time's format, so the server takes it; pydantic
    does not. The run neither crashes nor waits silently."""
    with running(stack, "CHG-201") as run:
        form = run.form("ciso", "verbal-approval")
        bad = {**verbal("carol", "erin")(form, []), "given_at": "yesterday at noon"}
        assert form.submit(bad) is None
        form = run.form("ciso", "verbal-approval", attempt=1)
        assert form.submit(verbal("carol", "erin")(form, [])) is None
        assert finish_approving(stack, run)["outcome"] == "succeeded"
    (failed,) = events(stack, "CHG-201", "approval_attempt_failed")
    assert (failed.payload["kind"], failed.payload["claimed"]) == ("invalid", "erin")
    assert failed.payload["reason"].startswith("the answer does not fit the form: given_at: ")
    assert "yesterday" not in failed.payload["reason"]  # the values are never recorded


def test_prefect_keeps_no_submitted_code(stack: Stack) -> None:
    with running(stack, "CHG-101") as run:
        form = run.form("engineering_lead", "review")
        assert form.submit(decide("erin", NOT_SENT)) is None
        form = run.form("engineering_lead", "review", attempt=1)
        assert form.approve("erin") is None
        answered = form.run_id
        assert finish_approving(stack, run)["outcome"] == "succeeded"
    with get_client(sync_client=True) as client:
        kept = client.filter_flow_run_input(flow_run_id=answered, key_prefix="paused-",
                                            limit=200, exclude_keys=set())
    assert kept and all(not i.key.endswith("-response") for i in kept)
    codes = [n.code for n in code_notices(stack.outbox)] + [NOT_SENT]
    assert not [i.key for i in kept if any(c in i.value for c in codes)]


def test_without_a_code_host_the_shipped_policy_refuses_the_tickets_claims_at_submit(
        stack: Stack) -> None:
    """A ticket that claims its own review, CI and scan is refused before anyone is asked."""
    path = stack.settings.config_dir / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    shipped = yaml.safe_load((PROJECT_ROOT / "config" / "policy.yaml").read_text())
    policy["gates"]["evidence_sources"] = shipped["gates"]["evidence_sources"]
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    stack.adapters.config = load_config(stack.settings.config_dir)
    with pytest.raises(ChangeRefused) as refused:
        change_request("CHG-101")
    assert refused.value.problems == [
        f"{gate}: the policy does not accept evidence from the ticket for {gate} "
        f"(gates.evidence_sources.{gate}: code_host); configure the code host "
        "(CHANGEFLOW_CODE_HOST=github)"
        for gate in ("code_review", "automated_tests", "security_scan")]
    assert [e.type for e in events(stack, "CHG-101")] == ["validation_failed",
                                                          "notice_delivered"]
    assert code_notices(stack.outbox) == []  # only alice's "refused" notice


class Clock:
    """The real time, plus however far a test moves it."""

    def __init__(self, real: Callable[[], datetime]) -> None:
        self.real, self.ahead = real, timedelta(0)

    def __call__(self) -> datetime:
        return self.real() + self.ahead


def test_an_expired_code_is_refused_and_the_change_expires(stack: Stack) -> None:
    clock = Clock(stack.adapters.clock)
    with installed(stack.adapters.replace(clock=clock)), running(stack, "CHG-101") as run:
        form = run.form("engineering_lead", "review")
        (asked,) = events(stack, "CHG-101", "approval_requested")
        clock.ahead = timedelta(hours=72, seconds=1)
        assert form.approve("erin") is None  # the right person, with the right code
        with pytest.raises(ChangeStopped, match="CHG-101: the engineering_lead decision expired"):
            run.finish()
    failed, expired = events(stack, "CHG-101", "approval_attempt_failed", "approval_expired")
    assert failed.payload["reason"] == f"the code expired at {asked.payload['expires_at']}"
    assert expired.payload["role"] == "engineering_lead"
    assert events(stack, "CHG-101", *DECISIONS, "approval_granted") == []
    record = stack.adapters.change_log.record("CHG-101")
    assert record is not None and record.outcome == "expired"
    assert stack.adapters.tickets.get("CHG-101").status == "rejected"


def test_a_decision_sent_after_the_wait_timed_out_is_refused_and_nothing_counts(
        stack: Stack) -> None:
    hasty = stack.settings.model_copy(update={"approval_timeout_hours": 2 / 3600})
    with installed(stack.adapters.replace(settings=hasty)):
        with pytest.raises(ChangeStopped, match="CHG-101: the engineering_lead decision expired"):
            change_request("CHG-101")
    (sent,) = code_notices(stack.outbox)
    with pytest.raises(NotPausedError):
        resume_flow_run(UUID(sent.run_id), run_input=decide("erin", sent.code))
    assert change_request("CHG-101")["outcome"] == "expired"  # and nobody is asked again
    assert events(stack, "CHG-101", *DECISIONS, "approval_granted") == []
    assert code_notices(stack.outbox) == [sent]
