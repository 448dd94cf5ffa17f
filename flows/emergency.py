"""Policy section 5 after the deployment: closing an emergency's obligations, and chasing them.

- `emergency-obligation`: an owner answers one obligation (confirms the verbal approval,
  completes the documentation, records the post-hoc review, signs off) in the Prefect
  UI with their one-time code. A refusal (a disputed approval, a refused sign-off) is
  recorded and escalated to the CISO at once.
- `emergency-follow-up`, hourly: reminds owners of what falls due soon, escalates what
  is overdue, and records each notice; safe to run as often as anyone likes.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from domain.emergency import ObligationKind
from domain.events import EventType
from domain.models import Category, Decision
from flows.decisions import decide
from flows.lifecycle import Outcome, run_id
from integrations.factory import open_adapters
from tasks.common import ChangeStopped
from tasks.intake import submit_change
from tasks.obligations import (
    NEEDS_COMMENT,
    check_obligation,
    escalate_refusal,
    follow_up_change,
)
from tasks.progress import stopped


@flow(name="emergency-obligation", flow_run_name="{ticket_key} · {obligation}",
      log_prints=True)
def emergency_obligation(ticket_key: str, obligation: ObligationKind) -> Outcome:
    """An owner of the obligation answers it, attributably; the answer is recorded.

    Args:
        ticket_key: the emergency change's ticket key, e.g. CHG-201.
        obligation: the open obligation to answer (`changeflow obligations` lists them).
    """
    try:
        with open_adapters() as a:
            change = submit_change(a, ticket_key)
            open_item = check_obligation(a, change, obligation)
            answer = decide(a, change, open_item.owner_role, obligation, open_item.owners,
                            run_id(), event_type=EventType.OBLIGATION_RESPONDED,
                            comment_required=NEEDS_COMMENT.get(obligation))
            if Decision(answer.decision) is Decision.DECLINE:
                escalate_refusal(a, change, obligation, answer.approver, answer.comment)
            final = a.change_log.record(change.id)
            assert final is not None
            done = final.obligations[obligation]
            return {"change": change.id, "obligation": obligation,
                    "outcome": done.outcome, "by": done.closed_by}
    except ChangeStopped as stop:
        return stopped(ticket_key, stop)


@flow(name="emergency-follow-up", log_prints=True)
def emergency_follow_up() -> dict[str, Any]:
    """Remind and escalate what emergency changes owe; each notice recorded once a period."""
    logger = get_run_logger()
    with open_adapters() as a:
        emergencies = a.change_log.changes(category=Category.EMERGENCY.value)
        sent: list[dict[str, Any]] = []
        open_items = 0
        for rec in emergencies:
            open_items += sum(1 for o in rec.obligations.values() if not o.done)
            sent += follow_up_change(a, rec)
        lines = ["# Emergency follow-up", "",
                 f"{len(emergencies)} emergency change(s), {open_items} open obligation(s), "
                 f"{len(sent)} notice(s) sent.", ""]
        if sent:
            lines += ["| change | obligation | status | action | due (UTC) | to |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {s['change_id']} | {s['obligation']} | {s['status']} | "
                      f"{s['action']} | {s['due'][:16]} | {', '.join(s['to'])} |" for s in sent]
        create_markdown_artifact(key="emergency-follow-up", markdown="\n".join(lines),
                                 description="Emergency obligations chased this run")
        logger.info("%s notice(s) sent for %s open obligation(s)", len(sent), open_items)
        return {"emergencies": len(emergencies), "open": open_items, "sent": sent}
