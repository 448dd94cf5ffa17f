"""Waiting for a person's decision in the Prefect UI, attributably.

Run in-process, a wait pauses the flow (the process polls). Run from a deployment, it
suspends it: the process exits, no worker is held, and the resumed run starts again from
the top, where every step finds its own record in the change log and is not repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast
from uuid import uuid4

import prefect.flow_runs
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.input.actions import delete_flow_run_input, read_flow_run_input
from prefect.logging import get_run_logger
from prefect.runtime import deployment, flow_run
from prefect.states import Running
from pydantic import ValidationError

from domain.events import EventType
from domain.models import Approval, ChangeRequest
from domain.policy import ApprovalRequirement
from integrations.factory import Adapters
from tasks.approvals import (
    ApprovalForm,
    ApprovalRequest,
    decision_of,
    everyone,
    expire_request,
    failed_attempts,
    form_for,
    judge_decision,
    refuse_invalid,
    request_decision,
)
from tasks.common import ChangeStopped
from tasks.forms import AVAILABILITY, AVAILABLE, describe
from tasks.progress import publish_status
from tasks.sync import take_ticket_approvals
from tasks.verbal import (
    PURPOSE,
    VerbalApprovalForm,
    judge_verbal,
    recorders,
    verbal_approvers,
    verbal_form_for,
)

Form = TypeVar("Form", bound=RunInput)

_WAITING_FOR: ContextVar[str | None] = ContextVar("changeflow_waiting_for", default=None)
"""The message of the paused or suspended state this context is about to propose."""


def _with_message(make: Callable[..., State[Any]]) -> Callable[..., State[Any]]:
    def state(*args: Any, **kwargs: Any) -> State[Any]:
        message = _WAITING_FOR.get()
        return make(*args, **kwargs, **({"message": message} if message else {}))
    return state


# Prefect's pause and suspend take no state message: the states they propose get the
# one set for the calling context, so a waiting run says what it waits for in the UI.
for _name in ("Paused", "Suspended"):
    setattr(prefect.flow_runs, _name, _with_message(getattr(prefect.flow_runs, _name)))


def _wait(form: type[Form] | None, seconds: int, key: str, poll: float,
          waiting_for: str) -> Form | None:
    """Pause (in process) or suspend (deployed) until resumed, saying what is awaited."""
    token = _WAITING_FOR.set(f"Waiting for {waiting_for}")
    try:
        if deployment.id:
            return suspend_flow_run(wait_for_input=form, timeout=seconds, key=key)
        interval: Any = poll  # typed int by Prefect, slept as a float
        return pause_flow_run(wait_for_input=form, timeout=seconds, key=key,
                              poll_interval=interval)
    except FlowPauseTimeout:
        _running_again(f"The wait for {waiting_for} expired")
        raise
    finally:
        _WAITING_FOR.reset(token)


def _running_again(message: str) -> None:
    """Take the run out of its timed-out pause, so the outcome it records is its own.

    Prefect refuses any state after a pause that timed out, replacing it with a bare
    "never resumed" failure; the run goes on to record the expiry and ends Rejected.
    """
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(message=message), force=True)


def _response_key(key: str) -> str:
    """Where Prefect keeps the answer to the form waiting under `key` (its state's name)."""
    return f"{'suspended' if deployment.id else 'paused'}-{key}-response"


def _claimed(a: Adapters, key: str) -> str:
    """Who an answer that does not fit the form claimed to be, if someone in the roster."""
    raw = read_flow_run_input(_response_key(key))
    for field in ("recorder", "approver"):
        named = raw.get(field) if isinstance(raw, dict) else None
        if isinstance(named, str) and a.config.roster.get(named) is not None:
            return named
    return "unknown"


def _invalid(error: ValidationError) -> str:
    """What is wrong with an answer, by field: never the values (a code may be among them)."""
    parts = [f"{'.'.join(str(x) for x in e['loc']) or 'the answer'}: {e['msg']}"
             for e in error.errors(include_input=False, include_url=False)]
    return "the answer does not fit the form: " + "; ".join(parts)


def _answer(a: Adapters, change: ChangeRequest, request: ApprovalRequest, form: type[Form],
            judge: Callable[[Form], str | None]) -> Form:
    """Show `form` until `judge` accepts an answer (returns None), or the wait expires.

    Every answer, accepted or not, is deleted from Prefect once judged, so Prefect's
    database keeps no code. One that does not fit the form (written through the API, past
    the UI's checks) is recorded as a failed attempt and the form shown again.

    Raises:
        ChangeStopped: the wait expired (recorded as a rejection for an approval).
    """
    while True:
        remaining = int((request.expires_at - a.now()).total_seconds())
        if remaining <= 0:
            raise expire_request(a, change, request)
        initial = form.with_initial_data(description=describe(a, change, request))
        key = f"{request.key}-{failed_attempts(a, request)}"
        _announce_wait(a, change, request)
        try:
            answer = cast(Form, _wait(initial, remaining, key, a.settings.approval_poll_seconds,
                                      request.waiting_for()))
        except FlowPauseTimeout:
            raise expire_request(a, change, request) from None
        except ValidationError as error:
            refused: str | None = refuse_invalid(a, request, _claimed(a, key), _invalid(error))
        else:
            refused = judge(answer)
        delete_flow_run_input(_response_key(key))
        if refused is None:
            return answer


def _announce_wait(a: Adapters, change: ChangeRequest, request: ApprovalRequest) -> None:
    """Say in the run's log and the change's status what the run now waits for."""
    get_run_logger().info("%s: waiting for %s", change.id, request.waiting_for())
    publish_status(a, change.id, request.waiting_for())


def decide(a: Adapters, change: ChangeRequest, role: str, purpose: str, eligible: list[str],
           run_id: str, event_type: str = EventType.APPROVAL_RECORDED,
           comment_required: str | None = None) -> ApprovalForm:
    """Ask for one decision and wait until a valid one is recorded, or the wait expires.

    Raises:
        ChangeStopped: the wait expired (recorded as a rejection for an approval).
    """
    request = request_decision(a, change, role, purpose, eligible, run_id)
    question = AVAILABLE if purpose == AVAILABILITY else None
    return _answer(a, change, request, form_for(everyone(a, request.eligible), question),
                   lambda answer: judge_decision(a, change, request, answer, event_type,
                                                 comment_required))


def ticket_system_approval(a: Adapters, role: str) -> str | None:
    """Where `role` decides in Jira (JSM approval or status), or None: the Prefect form."""
    jira = a.config.jira
    if a.settings.tickets != "jira" or jira is None or jira.approvals.mode == "prefect":
        return None
    return jira.approvals.names.get(role)


def approve(a: Adapters, change: ChangeRequest, role: str, purpose: str, eligible: list[str],
            run_id: str) -> Approval:
    """One approval decision, taken where the configuration says: Jira or the Prefect form.

    In Jira, the run waits (paused, or suspended from a deployment) until `jira-sync`
    records the decision from Jira's own record and wakes it, or the wait expires.

    Raises:
        ChangeStopped: the wait expired (recorded as a rejection).
    """
    where = ticket_system_approval(a, role)
    if where is None:
        decide(a, change, role, purpose, eligible, run_id)
    else:
        request = request_decision(a, change, role, purpose, eligible, run_id,
                                   in_ticket_system=where)
        while True:
            _announce_wait(a, change, request)  # first: the sync wakes only a waiting run
            take_ticket_approvals(a, change.id)  # decided before we asked, or since
            if decision_of(a, change, role, purpose) is not None:
                break
            remaining = int((request.expires_at - a.now()).total_seconds())
            if remaining <= 0:
                raise expire_request(a, change, request)
            try:
                _wait(None, remaining, f"{request.key}-jira-{uuid4().hex[:12]}",
                      a.settings.approval_poll_seconds, request.waiting_for() + " in Jira")
            except FlowPauseTimeout:
                raise expire_request(a, change, request) from None
    decided = decision_of(a, change, role, purpose)
    assert decided is not None
    return decided


def record_verbal(a: Adapters, change: ChangeRequest, requirement: ApprovalRequirement,
                  run_id: str) -> VerbalApprovalForm:
    """Section 5 step 1: wait until someone who heard the verbal approval records it.

    Raises:
        ChangeStopped: nobody may give or record it, or the wait expired (a rejection).
    """
    approvers = verbal_approvers(a, change, requirement)
    if not approvers:
        raise ChangeStopped(f"nobody in the roster may approve {change.id} as "
                            f"{requirement.role} or {requirement.fallback_role}")
    request = request_decision(a, change, requirement.role, PURPOSE, recorders(a, change),
                               run_id, approvers=approvers)
    form = verbal_form_for(everyone(a, approvers), everyone(a, request.eligible))
    return _answer(a, change, request, form,
                   lambda answer: judge_verbal(a, change, requirement, request, answer))
