"""Waiting for a person's decision in the Prefect UI, attributably.

Run in-process, a wait pauses the flow (the process polls). Run from a deployment, it
suspends it: the process exits, no worker is held, and the resumed run starts again from
the top, where every step finds its own record in the change log and is not repeated.
"""

from __future__ import annotations

from typing import Any

from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.runtime import deployment

from domain.models import ChangeRequest
from integrations.factory import Adapters
from tasks.approvals import (
    ApprovalForm,
    expire_request,
    failed_attempts,
    form_for,
    judge_decision,
    request_decision,
)
from tasks.forms import describe


def _wait(form: type[ApprovalForm], seconds: int, key: str, poll: float) -> ApprovalForm:
    if deployment.id:
        return suspend_flow_run(wait_for_input=form, timeout=seconds, key=key)
    interval: Any = poll  # typed int by Prefect, slept as a float
    return pause_flow_run(wait_for_input=form, timeout=seconds, key=key, poll_interval=interval)


def decide(a: Adapters, change: ChangeRequest, role: str, purpose: str, eligible: list[str],
           run_id: str, event_type: str = "approval_recorded") -> ApprovalForm:
    """Ask for one decision and wait until a valid one is recorded, or the wait expires.

    Raises:
        ChangeStopped: the wait expired (recorded as a rejection).
    """
    request = request_decision(a, change, role, purpose, eligible, run_id)
    form = form_for(request.eligible)
    while True:
        remaining = int((request.expires_at - a.now()).total_seconds())
        if remaining <= 0:
            raise expire_request(a, change, request)
        initial = form.with_initial_data(description=describe(a, change, request))
        try:
            answer = _wait(initial, remaining, f"{request.key}-{failed_attempts(a, request)}",
                           a.settings.approval_poll_seconds)
        except FlowPauseTimeout:
            raise expire_request(a, change, request) from None
        if judge_decision(a, request, answer, event_type) is None:
            return answer
