"""The description shown above a decision form in the Prefect UI."""

from __future__ import annotations

from domain.events import ApprovalAttemptFailed, EventType, payload_of
from domain.models import ChangeRequest
from integrations.factory import Adapters
from tasks.approvals import ApprovalRequest
from tasks.common import events_of
from tasks.gates import preview_gates
from tasks.verbal import PURPOSE as VERBAL


def describe(a: Adapters, change: ChangeRequest, request: ApprovalRequest) -> str:
    """The form's description: what is being decided, on what evidence."""
    plan = change.rollback_plan
    lines = [f"## {change.id}: {request.purpose} decision as **{request.role}**", "",
             f"**{change.summary}** ({change.category.value}; {change.service} "
             f"{change.version}; author {change.author})", "",
             f"**Risk.** {change.risk_assessment}", "",
             "**Rollback plan.**", "", "| part | plan |", "|---|---|",
             f"| trigger | {plan.trigger} |", f"| steps | {plan.steps} |",
             f"| owner | {plan.owner} |", f"| verification | {plan.verification} |",
             f"| time estimate | {plan.time_estimate_minutes} min |", "",
             "**Gates so far.**", "", "| gate | status | reason |", "|---|---|---|"]
    lines += [f"| {g.gate} | {g.status.value} | {g.reason} |" for g in preview_gates(a, change)]
    who = ("Name who gave the approval, choose yourself as the recorder"
           if request.purpose == VERBAL else "Choose yourself as approver")
    lines += ["", f"{who} ({', '.join(request.eligible)}) and enter the one-time code "
              f"changeflow sent you. It expires {request.expires_at:%Y-%m-%d %H:%M} UTC."]
    refused = [p for e in events_of(a, change, EventType.APPROVAL_ATTEMPT_FAILED)
               if (p := payload_of(e, ApprovalAttemptFailed)).run_id == request.run_id
               and (p.role, p.purpose) == (request.role, request.purpose)]
    if refused:
        lines += ["", f"**The last attempt was refused:** {refused[-1].reason}."]
    return "\n".join(lines)
