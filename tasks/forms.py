"""The description shown above a decision form in the Prefect UI."""

from __future__ import annotations

from domain.events import ApprovalAttemptFailed, EventType, payload_of
from domain.models import ChangeRequest
from integrations.factory import Adapters
from tasks.approvals import ApprovalRequest
from tasks.common import events_of
from tasks.gates import preview_gates
from tasks.markdown import gates_table, plain
from tasks.verbal import PURPOSE as VERBAL


def describe(a: Adapters, change: ChangeRequest, request: ApprovalRequest) -> str:
    """The form's description: what is being decided, on what evidence.

    changeflow's own findings (the gates, who may answer) stand apart from what the
    ticket says, and every value taken from the ticket is `plain` text: a ticket cannot
    draw a table, a link or an image that looks like changeflow's.
    """
    plan = change.rollback_plan
    lines = [f"## {change.id}: {request.purpose} decision as **{request.role}**", "",
             "### changeflow's findings", "",
             f"Category **{change.category.value}**, service **{plain(change.service)}**, "
             f"version **{plain(change.version)}**, author **{plain(change.author)}**.", "",
             *gates_table(preview_gates(a, change))]
    who = ("Name who gave the approval, choose yourself as the recorder"
           if request.purpose == VERBAL else "Choose yourself as approver")
    lines += ["", f"{who} ({', '.join(request.eligible)}) and enter the one-time code "
              f"changeflow sent you. It expires {request.expires_at:%Y-%m-%d %H:%M} UTC. "
              "changeflow never asks for a code anywhere else than in this form."]
    if request.unreached:
        lines += ["", f"**Not reached:** no channel could deliver a code to "
                  f"{', '.join(request.unreached)}, so they cannot answer here until a later "
                  "run of the change reaches them (each failed delivery is in the change log)."]
    refused = [p for e in events_of(a, change, EventType.APPROVAL_ATTEMPT_FAILED)
               if request.about(p := payload_of(e, ApprovalAttemptFailed))]
    if refused:
        lines += ["", f"**The last attempt was refused:** {plain(refused[-1].reason)}."]
    lines += ["", "### What the ticket says (written by its author, shown as text)", "",
              f"> **Summary.** {plain(change.summary)}", ">",
              f"> **Risk.** {plain(change.risk_assessment)}", ">",
              "> **Rollback plan.** "
              f"Trigger: {plain(plan.trigger)}. Steps: {plain(plan.steps)}. "
              f"Owner: {plain(plan.owner)}. Verification: {plain(plan.verification)}. "
              f"Time estimate: {plan.time_estimate_minutes} min."]
    return "\n".join(lines)
