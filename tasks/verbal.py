"""Policy section 5, step 1: a verbal approval, recorded attributably by who heard it.

The CISO (or the Engineering Lead, with the reason the CISO was unavailable) approves by
phone or in person; the person who heard it records it in the Prefect UI with their own
one-time code: who approved, when, over which channel. The domain rules judge it before
it is recorded, so a refused one (no reason for the fallback, the approver or the change's
author recording it) is a failed attempt and the form is shown again. The approver is then
asked to confirm; until they do, the approval is an open item of the change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from prefect.input import RunInput
from pydantic import Field, create_model

from domain.approvals import (
    VERBAL_CHANNEL,
    check_approvals,
    eligible_approvers,
    verbal_recorders,
)
from domain.emergency import confirmation_obligation
from domain.events import EventType
from domain.models import Approval, ChangeRequest, Decision, Notice, Purpose
from domain.policy import ApprovalRequirement
from integrations.factory import Adapters
from tasks.approvals import ApprovalRequest, dropdown, judge_answer
from tasks.common import record, step
from tasks.notices import send

PURPOSE = Purpose.VERBAL
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a stated approval time may be (clocks differ); more is refused."""


class VerbalApprovalForm(RunInput):
    """The resume form for recording a verbal approval. Dropdowns list the roster."""

    approver: str = Field(description="Who gave the approval")
    recorder: str = Field(description="Who you are: you heard the approval")
    code: str = Field(description="Your one-time code from changeflow", min_length=1)
    channel: Literal["phone", "video call", "in person", "chat"] = Field(
        description="How the approval was given")
    given_at: datetime | None = Field(
        default=None, description="When it was given (UTC if no zone; empty: now)")
    fallback_reason: str = Field(
        default="", description="If the Engineering Lead approved: why the CISO could not")
    comment: str = Field(default="", description="What was approved, in the approver's words")


def verbal_form_for(approvers: list[str], recorders: list[str]) -> type[VerbalApprovalForm]:
    """The form with `approver` and `recorder` as dropdowns (see `everyone`)."""
    return create_model("VerbalApprovalForm", __base__=VerbalApprovalForm,
                        approver=dropdown(approvers, "Who gave the approval"),
                        recorder=dropdown(recorders, "Who you are: you heard it"))


def verbal_approvers(a: Adapters, change: ChangeRequest,
                     requirement: ApprovalRequirement) -> list[str]:
    """Who may give the verbal approval: the role's holders, then its fallback's."""
    roster = a.config.roster
    found = eligible_approvers(requirement, change, roster)
    found += eligible_approvers(requirement, change, roster, fallback=True)
    return list(dict.fromkeys(p.id for p in found))


def recorders(a: Adapters, change: ChangeRequest) -> list[str]:
    """Who may record a verbal approval (the policy's recorder roles, never the author)."""
    return [p.id for p in verbal_recorders(change, a.config.policy, a.config.roster)]


def _role(a: Adapters, requirement: ApprovalRequirement, approver: str) -> str:
    person = a.config.roster.get(approver)
    if person is None or requirement.role in person.roles or requirement.fallback_role is None:
        return requirement.role
    return requirement.fallback_role


@step("judge-verbal-approval")
def judge_verbal(a: Adapters, change: ChangeRequest, requirement: ApprovalRequirement,
                 request: ApprovalRequest, answer: VerbalApprovalForm) -> str | None:
    """Record a verbal approval, or refuse it as a failed attempt; returns why refused.

    The recorder's code is judged as any decision's (`judge_answer`); the domain then
    judges the approval with its recorder, so a refused one spends the code.
    """
    now = a.now()
    given = answer.given_at or now
    given = given.replace(tzinfo=UTC) if given.tzinfo is None else given
    candidate = Approval(role=_role(a, requirement, answer.approver),
                         person_id=answer.approver, decision=Decision.APPROVE, at=now,
                         channel=VERBAL_CHANNEL, comment=answer.comment,
                         fallback_reason=answer.fallback_reason.strip() or None,
                         recorded_by=answer.recorder)

    def rules() -> str | None:
        if given > now + CLOCK_SKEW:
            return f"given_at {given.isoformat()} is in the future"
        judged = check_approvals(change, [candidate], a.config.policy, a.config.roster)
        return "; ".join(judged.problems) if judged.problems else None

    def not_asked() -> str | None:
        return rules() or (f"{answer.recorder!r} may not record this verbal approval "
                           f"(recorders: {', '.join(request.eligible)})")

    refused = judge_answer(a, request, answer.recorder, answer.code, not_asked, rules)
    if refused is not None:
        return refused
    record(a, change.id, EventType.APPROVAL_RECORDED, answer.recorder, role=candidate.role,
           requested_role=request.role, purpose=PURPOSE, person_id=answer.approver,
           decision="approve", channel=VERBAL_CHANNEL, via=answer.channel,
           given_at=given.astimezone(UTC).isoformat(), recorded_by=answer.recorder,
           fallback_reason=candidate.fallback_reason, comment=answer.comment,
           run_id=request.run_id)
    ask_confirmation(a, change, candidate, answer.channel)
    return None


def ask_confirmation(a: Adapters, change: ChangeRequest, approval: Approval, via: str) -> None:
    """Open the approver's confirmation as an obligation and tell them."""
    due = confirmation_obligation(approval.at, approval.role, a.config.policy).due
    record(a, change.id, EventType.OBLIGATION_OPENED, obligation="approval_confirmation",
           due=due.isoformat(), owner_role=approval.role, owners=[approval.person_id])
    send(a, Notice(
        to=approval.person_id, kind="confirm", change_id=change.id,
        subject=f"{change.id}: confirm the emergency approval recorded in your name",
        body=(f"{approval.recorded_by} recorded that you approved {change.id} "
              f"({change.summary}) as {approval.role} by {via}.\nConfirm it, or dispute it, "
              f"by {due:%Y-%m-%d %H:%M} UTC: run the emergency-obligation flow for "
              f"{change.id} with obligation approval_confirmation.")))
