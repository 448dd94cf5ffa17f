"""The description shown above a decision form in the Prefect UI: the task first.

At the top, what is asked, of whom, by when, and the last refusal; then changeflow's
findings (the gates, and for QA the staging results, for availability the slot); then what
the ticket says. Everything wraps at the form's width: lists, not tables.
"""

from __future__ import annotations

from domain.events import (
    ApprovalAttemptFailed,
    DeploymentScheduled,
    EventType,
    StagingResults,
    payload_of,
)
from domain.models import ChangeRequest, Purpose
from integrations.factory import Adapters
from tasks.approvals import ApprovalRequest
from tasks.common import events_of, last_of
from tasks.gates import preview_gates
from tasks.markdown import gates_list, plain
from tasks.verbal import PURPOSE as VERBAL

AVAILABILITY = Purpose.AVAILABILITY
AVAILABLE = "Are you available? approve: yes, I am; decline: no, I am not"
"""The availability form's question, as its decision field's description."""

_HOW: dict[str, str] = {
    VERBAL: "Name who gave you the approval, choose yourself as the recorder",
    AVAILABILITY: "Choose yourself, **approve** if you are available or **decline** if not",
}


def describe(a: Adapters, change: ChangeRequest, request: ApprovalRequest) -> str:
    """The form's description: what is being decided, by whom, on what evidence.

    changeflow's own findings (the gates, who may answer) stand apart from what the
    ticket says, and every value taken from the ticket or a command's output is `plain`
    text: it cannot draw a table, a link or an image that looks like changeflow's.
    """
    lines = [*_task(a, change, request), "", "### changeflow's findings", "",
             f"Category **{change.category.value}**, service **{plain(change.service)}**, "
             f"version **{plain(change.version)}**, author **{plain(change.author)}**.", "",
             *gates_list(preview_gates(a, change))]
    if request.purpose == "staging-sign-off":
        lines += ["", "### Staging results", "", *_staging(a, change)]
    plan = change.rollback_plan
    lines += ["", "### What the ticket says (written by its author, shown as text)", "",
              f"> **Summary.** {plain(change.summary)}", ">",
              f"> **Risk.** {plain(change.risk_assessment)}", ">",
              "> **Rollback plan.** "
              f"Trigger: {plain(plan.trigger)}. Steps: {plain(plan.steps)}. "
              f"Owner: {plain(plan.owner)}. Verification: {plain(plan.verification)}. "
              f"Time estimate: {plan.time_estimate_minutes} min."]
    return "\n".join(lines)


def _task(a: Adapters, change: ChangeRequest, request: ApprovalRequest) -> list[str]:
    """What is asked, of whom, by when; the last refusal; who could not be reached."""
    asked = [p for p in request.eligible if p in request.digests] or request.eligible
    if request.purpose == AVAILABILITY:
        scheduled = last_of(a, change, EventType.DEPLOYMENT_SCHEDULED)
        slot = (f"{payload_of(scheduled, DeploymentScheduled).slot[:16].replace('T', ' ')} "
                "UTC" if scheduled else "now")
        lines = [f"## {change.id}: are you available?", "",
                 f"The deployment of {plain(change.service)} {plain(change.version)} to "
                 f"production is due at **{slot}**. As the **{request.role}**, are you "
                 "available to deploy it and, should its verification fail, to roll it back?"]
    elif request.purpose == VERBAL:
        lines = [f"## {change.id}: record the verbal approval as **{request.role}**", "",
                 f"Given by {' or '.join(request.approvers)}, recorded by whoever heard it."]
    else:
        lines = [f"## {change.id}: your {request.purpose} decision as **{request.role}**"]
    lines += ["", f"**Asked of** {' or '.join(asked)}, **by** "
              f"{request.expires_at:%Y-%m-%d %H:%M} UTC."]
    refused = [p for e in events_of(a, change, EventType.APPROVAL_ATTEMPT_FAILED)
               if request.about(p := payload_of(e, ApprovalAttemptFailed))]
    if refused:
        lines += ["", f"**Last refusal** (an answer as {plain(refused[-1].claimed)}): "
                  f"{plain(refused[-1].reason)}."]
    if request.unreached:
        lines += ["", f"**Not reached:** no channel could deliver a code to "
                  f"{', '.join(request.unreached)}, so they cannot answer here until a later "
                  "run of the change reaches them (each failed delivery is in the change log)."]
    how = _HOW.get(request.purpose, "Choose yourself as approver, **approve** or **decline**")
    return [*lines, "", f"{how}, and enter the one-time code changeflow sent you. changeflow "
            "never asks for a code anywhere else than in this form."]


def _staging(a: Adapters, change: ChangeRequest) -> list[str]:
    """Each staging step's result, as recorded (its output's end, as text)."""
    tested = last_of(a, change, EventType.STAGING_PASSED, EventType.STAGING_FAILED)
    if tested is None:
        return ["Staging has not run."]
    return [f"- **{plain(r.get('name'))}**: {'passed' if r.get('ok') else 'FAILED'} "
            f"(exit {plain(r.get('exit_code'))})"
            + (f": {plain(output, limit=160)}" if (output := str(r.get('output') or '').strip())
               else "")
            for r in payload_of(tested, StagingResults).results]
