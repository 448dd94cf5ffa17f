"""Policy section 2, steps 2, 3 and 5: asking people for attributable decisions.

A request sends each eligible person a one-time code through the notifier and records
only the codes' digests. A decision typed into the Prefect UI form counts only with the
right code for that person, run and role before the wait ends; anything else is
recorded as a failed attempt. Accepted decisions are recorded, then judged by the
domain rules.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import Field, create_model

from domain.approvals import ApprovalVerdict, check_approvals, required_approvals
from domain.events import ApprovalAttemptFailed, ApprovalRequested, Decided, EventType, payload_of
from domain.history import approvals_of
from domain.models import Approval, ChangeEvent, ChangeRequest, Notice
from domain.otp import CODE_ALPHABET, CODE_LENGTH, code_digest, code_problem
from integrations.factory import Adapters
from tasks.common import ChangeStopped, events_of, record, step
from tasks.tickets import tell

UI_CHANNEL = "prefect-ui"

APPROVAL_PURPOSES = frozenset({"review", "self-approval", "staging-sign-off",
                               "verbal-approval"})
"""Requests whose expiry rejects the change. Others (availability, an emergency's
follow-up obligations) only stop the run that asked."""


class ApprovalForm(RunInput):
    """The resume form shown in the Prefect UI. `approver` becomes a list of the eligible."""

    decision: Literal["approve", "decline"] = Field(description="Your decision")
    approver: str = Field(description="Who you are")
    code: str = Field(description="The one-time code changeflow sent you", min_length=1)
    comment: str = Field(default="", description="Why (shown on the ticket and in the log)")


def _as_enum(schema: dict[str, Any]) -> None:
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]


def dropdown(options: list[str], description: str) -> tuple[Any, Any]:
    """A form field that accepts one of `options`, shown as a dropdown in the Prefect UI.

    With a single option pydantic writes the schema as a `const`, which the UI shows as
    an empty, locked box and then refuses as missing; it is written as a one-item
    `enum` instead, so the only eligible person can still choose themselves.
    """
    choice: Any = Literal[tuple(options)]
    return choice, Field(description=description, json_schema_extra=_as_enum)


def form_for(eligible: list[str]) -> type[ApprovalForm]:
    """The form with `approver` restricted to the people who were sent a code."""
    return create_model("ApprovalForm", __base__=ApprovalForm,
                        approver=dropdown(eligible, "Who you are"))


@dataclass(frozen=True)
class ApprovalRequest:
    """An open request for one decision: what was asked, of whom, until when."""

    change_id: str
    role: str
    purpose: str
    run_id: str
    salt: str
    digests: dict[str, str]
    eligible: list[str]
    expires_at: datetime

    @property
    def key(self) -> str:
        """Identifies the request within its run (Prefect keys: lowercase, digits, dashes)."""
        return f"{self.purpose}-{self.role}".lower().replace("_", "-")


def _new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def _request(event: ChangeEvent) -> ApprovalRequest:
    p = payload_of(event, ApprovalRequested)
    return ApprovalRequest(event.change_id, p.role, p.purpose, p.run_id, p.salt, p.digests,
                           p.eligible, datetime.fromisoformat(p.expires_at))


def _open_request(a: Adapters, change_id: str, role: str, purpose: str,
                  run_id: str) -> ApprovalRequest | None:
    for event in reversed(events_of(a, change_id, EventType.APPROVAL_REQUESTED)):
        request = _request(event)
        if (request.role, request.purpose, request.run_id) == (role, purpose, run_id):
            return request
    return None


@step("request-decision")
def request_decision(a: Adapters, change: ChangeRequest, role: str, purpose: str,
                     eligible: list[str], run_id: str, approvers: list[str] | None = None,
                     in_ticket_system: str | None = None) -> ApprovalRequest:
    """Send each eligible person a code and record the request (once per run and role).

    A run that starts again from the top finds its request in the change log and sends
    nothing twice. With `approvers`, the eligible are recorders of a verbal approval
    that one of `approvers` gave them. With `in_ticket_system` (the JSM approval or the
    approving transition's status), the decision is taken in the ticket system: no codes
    are sent, only a notice where to decide; the sync records it.

    Raises:
        ChangeStopped: nobody in the roster may decide for this role (fails closed).
    """
    existing = _open_request(a, change.id, role, purpose, run_id)
    if existing is not None:
        return existing
    if not eligible:
        raise ChangeStopped(f"nobody in the roster may decide as {role!r} for {change.id} "
                            "(the author, shared accounts and who approved in another role are "
                            "excluded)")
    salt = secrets.token_hex(16)
    expires_at = a.now() + timedelta(hours=a.settings.approval_timeout_hours)
    if in_ticket_system is not None:
        return _request_in_ticket_system(a, change, role, purpose, eligible, run_id,
                                         expires_at, in_ticket_system)
    digests = {}
    ask = (f"your {purpose} decision as {role} is needed" if approvers is None else
           f"record the verbal approval you heard from {' or '.join(approvers)}")
    heard = "" if approvers is None else f"\napprovers: {', '.join(approvers)}"
    for person_id in eligible:
        code = _new_code()
        digests[person_id] = code_digest(code, run_id=run_id, role=role, person_id=person_id,
                                         salt=salt)
        a.notifier.notify(Notice(
            to=person_id, kind="approval-code", change_id=change.id,
            subject=f"{change.id}: {ask}",
            body=(f"{change.summary}\nOpen flow run {run_id} in Prefect, choose Resume, and "
                  f"enter this code with your decision.\ncode: {code}\nrun: {run_id}\n"
                  f"role: {role}\npurpose: {purpose}\nexpires: {expires_at.isoformat()}"
                  f"{heard}")))
    record(a, change.id, EventType.APPROVAL_REQUESTED, role=role, purpose=purpose, run_id=run_id,
           salt=salt, digests=digests, eligible=eligible, expires_at=expires_at.isoformat())
    return ApprovalRequest(change.id, role, purpose, run_id, salt, digests, eligible,
                           expires_at)


def _request_in_ticket_system(a: Adapters, change: ChangeRequest, role: str, purpose: str,
                              eligible: list[str], run_id: str, expires_at: datetime,
                              where: str) -> ApprovalRequest:
    for person_id in eligible:
        a.notifier.notify(Notice(
            to=person_id, kind="approval-request", change_id=change.id,
            subject=f"{change.id}: your {purpose} decision as {role} is needed in Jira",
            body=f"{change.summary}\nDecide in Jira: {where!r} on {change.id}.\n"
                 f"expires: {expires_at.isoformat()}"))
    record(a, change.id, EventType.APPROVAL_REQUESTED, role=role, purpose=purpose, run_id=run_id,
           salt="", digests={}, eligible=eligible, expires_at=expires_at.isoformat(),
           channel="jira", where=where)
    return ApprovalRequest(change.id, role, purpose, run_id, "", {}, eligible, expires_at)


def refuse_attempt(a: Adapters, request: ApprovalRequest, claimed: str,
                   problem: str | None) -> str | None:
    """Record a refused form answer as a failed attempt; passes `problem` through."""
    if problem is not None:
        record(a, request.change_id, EventType.APPROVAL_ATTEMPT_FAILED, role=request.role,
               purpose=request.purpose, run_id=request.run_id, claimed=claimed,
               reason=problem)
    return problem


def check_code(a: Adapters, request: ApprovalRequest, person_id: str, code: str) -> str | None:
    """Why `code` does not let `person_id` answer `request` now, or None."""
    return code_problem(code, person_id=person_id, run_id=request.run_id, role=request.role,
                        salt=request.salt, digests=request.digests,
                        expires_at=request.expires_at, now=a.now())


@step("judge-decision")
def judge_decision(a: Adapters, request: ApprovalRequest, answer: ApprovalForm,
                   event_type: str = EventType.APPROVAL_RECORDED,
                   comment_required: str | None = None) -> str | None:
    """Record a decision typed into the form, or refuse it; returns why it was refused.

    A wrong, expired or someone else's code is recorded as a failed attempt, with the
    person the form claimed to be and the reason, and is not a decision; so is a blank
    comment when `comment_required` names what the comment must hold.
    """
    problem = check_code(a, request, answer.approver, answer.code)
    if problem is None and comment_required and not answer.comment.strip():
        problem = f"the comment is empty; it must hold {comment_required}"
    if refuse_attempt(a, request, answer.approver, problem):
        return problem
    record(a, request.change_id, event_type, answer.approver, role=request.role,
           purpose=request.purpose, person_id=answer.approver, decision=answer.decision,
           channel=UI_CHANNEL, comment=answer.comment, run_id=request.run_id)
    return None


def failed_attempts(a: Adapters, request: ApprovalRequest) -> int:
    """How many refused attempts this request has seen (keys the next form)."""
    return sum(1 for e in events_of(a, request.change_id, EventType.APPROVAL_ATTEMPT_FAILED)
               if (p := payload_of(e, ApprovalAttemptFailed)).role == request.role
               and (p.purpose, p.run_id) == (request.purpose, request.run_id))


def verdict(a: Adapters, change: ChangeRequest) -> ApprovalVerdict:
    """The domain's judgement of the recorded approvals for the category's roles."""
    needed = {role for r in required_approvals(change, a.config.policy)
              for role in (r.role, r.fallback_role) if role}
    given = [x for x in approvals_of(events_of(a, change)) if x.role in needed]
    return check_approvals(change, given, a.config.policy, a.config.roster)


def decision_of(a: Adapters, change: ChangeRequest, role: str, purpose: str) -> Approval | None:
    """The latest recorded decision for a role and purpose, if any."""
    found = approvals_of(e for e in events_of(a, change, EventType.APPROVAL_RECORDED)
                         if (payload_of(e, Decided).role, payload_of(e, Decided).purpose)
                         == (role, purpose))
    return found[-1] if found else None


@step("expire-request")
def expire_request(a: Adapters, change: ChangeRequest, request: ApprovalRequest) -> ChangeStopped:
    """A wait for an approval that timed out is a rejection, recorded as expired.

    Any other wait (availability, an obligation) that timed out stops only this run, with
    a note. Returns what to raise.
    """
    if request.purpose not in APPROVAL_PURPOSES:
        record(a, change.id, EventType.NOTE, text=f"the {request.purpose} answer as {request.role} "
               f"was not given before {request.expires_at.isoformat()}; nothing was done")
        return ChangeStopped(f"{change.id}: the {request.purpose} answer was not given in time")
    record(a, change.id, EventType.APPROVAL_EXPIRED, role=request.role, purpose=request.purpose,
           expired_at=request.expires_at.isoformat())
    tell(a, change.id, f"The {request.purpose} decision as {request.role} was not given in "
         "time: the change is rejected as expired.", "rejected")
    return ChangeStopped(f"{change.id}: the {request.role} decision expired")


def expired_requests(a: Adapters, change: ChangeRequest) -> list[ApprovalRequest]:
    """Approval requests that expired with no decision recorded.

    A suspended run whose wait times out is failed by the server without running any
    code, so its expiry is recorded by the next run of the change (or found here).
    """
    decided = {(d.requested_role or d.role, d.purpose)
               for e in events_of(a, change, EventType.APPROVAL_RECORDED)
               for d in [payload_of(e, Decided)]}
    requests = [_request(e) for e in events_of(a, change, EventType.APPROVAL_REQUESTED)]
    return [r for r in requests if r.expires_at <= a.now() and r.purpose in APPROVAL_PURPOSES
            and (r.role, r.purpose) not in decided]


@step("reject-change")
def reject_change(a: Adapters, change: ChangeRequest, step_name: str,
                  reasons: list[str]) -> ChangeStopped:
    """A rejection ends the change: recorded, on the ticket; returns what to raise."""
    record(a, change.id, EventType.CHANGE_REJECTED, step=step_name, reasons=reasons)
    tell(a, change.id, f"Rejected in {step_name}:\n- " + "\n- ".join(reasons), "rejected")
    return ChangeStopped(f"{change.id} rejected in {step_name}: " + "; ".join(reasons))


@step("grant-approval")
def grant_approval(a: Adapters, change: ChangeRequest, approvers: dict[str, str]) -> None:
    """Record that the review's approvals are complete and hold under the domain rules."""
    record(a, change.id, EventType.APPROVAL_GRANTED, approvers=approvers)
