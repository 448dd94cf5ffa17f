"""The Jira sync's steps: read what changed, record it, and act on it.

Each page of the incremental search is one retried task. A ticket whose `updated` is
what the sync saw last time costs nothing more. A ticket whose relevant fields or
status changed gets a `ticket_snapshot` event, so the change log holds what the ticket
said when it was approved, whatever it says today. Then:
- a ticket that reached the "ready" status starts its lifecycle, once per readiness
  (`run_deployment` with an idempotency key of ticket and readiness revision);
- a ticket moved to a cancelled status has its runs cancelled and the change recorded
  as cancelled;
- a change waiting for approvals given in Jira gets them recorded (judged by the domain
  rules first) and its waiting run resumed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run
from prefect.states import Cancelled, Cancelling

from domain.approvals import check_approvals, ineligibility
from domain.events import (
    ApprovalAttemptFailed,
    ApprovalRequested,
    Decided,
    EventType,
    NewEvent,
    RunStarted,
    payload_of,
)
from domain.lifecycle import TRANSITIONS
from domain.models import Approval, Decision, Ticket, TicketApproval
from integrations.factory import Adapters
from integrations.jira_tickets import JiraChangeTickets, dump
from integrations.sync_state import SyncState
from tasks.approvals import decision_of
from tasks.common import SYSTEM, ChangeStopped, events_of, record
from tasks.intake import submit_change
from tasks.tickets import ticket_task

CHANGE_REQUEST = "change-request/change-request"
"""The deployment a ready ticket starts."""

OPEN_RUN_STATES = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING,
                   StateType.PAUSED]
WATERMARK = "jira-sync:watermark"


@dataclass
class SyncCounts:
    """What one sync did, for its summary artifact and result."""

    seen: int = 0
    changed: int = 0
    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def jira_of(a: Adapters) -> JiraChangeTickets:
    """The Jira adapter; the sync has nothing to read without one."""
    if not isinstance(a.tickets, JiraChangeTickets):
        raise ChangeStopped("jira-sync needs CHANGEFLOW_TICKETS=jira (with CHANGEFLOW_JIRA_URL "
                            "and a token); nothing was done")
    return a.tickets


def digest(ticket: Ticket) -> str:
    """What matters of a ticket: its change fields and its status."""
    return hashlib.sha256(dump([ticket.status, ticket.fields]).encode()).hexdigest()


@ticket_task("fetch-page")
def fetch_page(a: Adapters, jql: str, cursor: str) -> tuple[list[Ticket], str | None,
                                                              int | None]:
    """One page of the search (retried on 429, 5xx and timeouts)."""
    return jira_of(a).search_page(jql, cursor)


@ticket_task("read-revision")
def read_revision(a: Adapters, key: str, status: str) -> str:
    """Which readiness of the ticket this is (its changelog entry)."""
    return jira_of(a).ready_revision(key, status)


@ticket_task("read-approvals")
def read_approvals(a: Adapters, key: str) -> list[TicketApproval]:
    """The ticket's decided approvals in Jira."""
    return jira_of(a).approvals(key)


def process_page(a: Adapters, state: SyncState, tickets: list[Ticket],
                 counts: SyncCounts) -> None:
    """Record and act on one page of tickets; unchanged ones cost nothing."""
    seen = state.get(f"ticket:{t.key}" for t in tickets)
    fresh = [t for t in tickets
             if seen.get(f"ticket:{t.key}", {}).get("updated") != _updated(t)]
    counts.seen += len(tickets)
    digests = {t.key: digest(t) for t in fresh}
    changed = [t for t in fresh if seen.get(f"ticket:{t.key}", {}).get("digest") != digests[t.key]]
    changed_keys = {t.key for t in changed}
    a.change_log.append_many([NewEvent(t.key, EventType.TICKET_SNAPSHOT, SYSTEM, {
        "source": "jira", "status": t.status, "fields": t.fields, "updated": _updated(t),
        "digest": digests[t.key]}, a.now()) for t in changed])
    counts.changed += len(changed)
    mapping = jira_of(a).mapping
    updates: dict[str, Any] = {}
    for ticket in fresh:
        before = seen.get(f"ticket:{ticket.key}", {})
        after = {**before, "updated": _updated(ticket), "digest": digests[ticket.key]}
        if ticket.status == mapping.statuses.ready:  # updated: maybe left and came back
            revision = read_revision(a, ticket.key, ticket.status)
            if revision != before.get("started"):
                start_lifecycle(a, ticket.key, revision)
                counts.started.append(ticket.key)
                after["started"] = revision
        elif ticket.status in mapping.statuses.cancelled and ticket.key in changed_keys:
            if cancel_change(a, ticket.key, ticket.status):
                counts.cancelled.append(ticket.key)
        if mapping.approvals.mode != "prefect":
            hand_over_approvals(a, ticket.key, counts)
        updates[f"ticket:{ticket.key}"] = after
    state.put(updates)


def _updated(ticket: Ticket) -> str:
    return ticket.updated.isoformat() if ticket.updated else ""


@ticket_task("start-lifecycle")
def start_lifecycle(a: Adapters, key: str, revision: str) -> str:
    """Start `change-request` for a ready ticket; never twice for one readiness."""
    run: Any = run_deployment(CHANGE_REQUEST, parameters={"ticket_key": key}, timeout=0,
                         as_subflow=False, tags=["jira-sync", f"ticket:{key}"],
                         idempotency_key=f"jira-{key}-{revision}")
    record(a, key, EventType.RUN_STARTED, flow_run_id=str(run.id), deployment=CHANGE_REQUEST,
           revision=revision, reason="the ticket reached the ready status in Jira")
    return str(run.id)


def _run_ids(a: Adapters, key: str) -> set[UUID]:
    """Runs that work on this change: started by the sync, or waiting for its decisions."""
    started = [payload_of(e, RunStarted).flow_run_id
               for e in events_of(a, key, EventType.RUN_STARTED)]
    asked = [payload_of(e, ApprovalRequested).run_id
             for e in events_of(a, key, EventType.APPROVAL_REQUESTED)]
    return {UUID(run) for run in [*started, *asked] if run != "local"}


@ticket_task("cancel-change")
def cancel_change(a: Adapters, key: str, status: str) -> bool:
    """Cancel the change's open runs and record the change as cancelled, if it still may be.

    Returns:
        True when something was cancelled (a run or the change).
    """
    ids = _run_ids(a, key)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=OPEN_RUN_STATES)),
            tags=FlowRunFilterTags(all_=[f"ticket:{key}"]))) + (client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=list(ids)),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(
                        any_=OPEN_RUN_STATES)))) if ids else [])
        stopped = []
        for run in {r.id: r for r in runs}.values():
            running = run.state is not None and run.state.type is StateType.RUNNING
            new = Cancelling if running else Cancelled
            client.set_flow_run_state(run.id, new(message=f"{key} was cancelled in Jira"),
                                      force=True)
            stopped.append(str(run.id))
    current = a.change_log.record(key)
    may_cancel = (current.state if current else None) in TRANSITIONS[EventType.CHANGE_CANCELLED]
    if may_cancel:
        record(a, key, EventType.CHANGE_CANCELLED, reason=f"moved to {status!r} in Jira",
               cancelled_runs=stopped)
    return may_cancel or bool(stopped)


def hand_over_approvals(a: Adapters, key: str, counts: SyncCounts) -> None:
    """Record Jira's decisions for a change waiting on them, and wake the waiting runs."""
    current = a.change_log.record(key)
    if current is None or current.state not in ("submitted", "in_review", "testing"):
        return
    recorded, refused, woken = take_ticket_approvals(a, key)
    counts.approvals += [f"{key}:{role}" for role in recorded]
    counts.refused += [f"{key}:{role}" for role in refused]
    for run_id in woken:
        _resume(run_id)


def take_ticket_approvals(a: Adapters, key: str) -> tuple[list[str], list[str], set[str]]:
    """Record the decisions taken in Jira for the change's open requests, once each.

    Each is judged by the domain rules first: one that does not count (the author, a
    person without the role, a shared account, someone not in the roster), or one given
    before changeflow asked, is recorded as a failed attempt instead. Each is known by
    its stable id in Jira (the approval's id and the approver's account id), so a renamed
    approver is not recorded twice.

    Returns:
        The roles recorded, the roles refused, and the runs that asked for them.
    """
    waiting = [(e.at, asked) for e in events_of(a, key, EventType.APPROVAL_REQUESTED)
               if (asked := payload_of(e, ApprovalRequested)).channel == "jira"]
    if not waiting:
        return [], [], set()
    seen = {payload_of(e, Decided).ref for e in events_of(a, key, EventType.APPROVAL_RECORDED)}
    seen |= {payload_of(e, ApprovalAttemptFailed).ref
             for e in events_of(a, key, EventType.APPROVAL_ATTEMPT_FAILED)}
    change = submit_change(a, key)
    recorded: list[str] = []
    refused: list[str] = []
    woken: set[str] = set()
    for given in read_approvals(a, key):
        asked_at, request = next(((at, w) for at, w in reversed(waiting)
                                  if w.role == given.role), (None, None))
        if given.ref in seen or request is None or asked_at is None:
            continue
        purpose, run_id = request.purpose, request.run_id
        if decision_of(a, change, given.role, purpose) is not None:
            continue
        candidate = Approval(role=given.role, person_id=given.person_id or "unknown",
                             decision=given.decision, at=given.at, channel=given.source)
        policy, roster = a.config.policy, a.config.roster
        refusal = (next(iter(check_approvals(change, [candidate], policy, roster).problems),
                        None) if given.decision is Decision.APPROVE
                   else ineligibility(change, candidate, policy, roster))
        if refusal is None and given.at < asked_at:
            refusal = (f"decided in Jira at {given.at.isoformat()}, before changeflow asked at "
                       f"{asked_at.isoformat()}: only a decision given for this request "
                       "counts; decide again in Jira")
        if refusal:
            record(a, key, EventType.APPROVAL_ATTEMPT_FAILED, role=given.role, purpose=purpose,
                   run_id=run_id, claimed=given.person_id, reason=refusal, ref=given.ref,
                   account=given.account)
            refused.append(given.role)
            continue
        record(a, key, EventType.APPROVAL_RECORDED, candidate.person_id, role=given.role,
               purpose=purpose, person_id=candidate.person_id, decision=given.decision.value,
               channel=given.source, comment=f"decided in Jira at {given.at.isoformat()}",
               run_id=run_id, ref=given.ref, account=given.account,
               decided_at=given.at.isoformat())
        recorded.append(given.role)
        woken.add(run_id)
    return recorded, refused, woken


def _resume(run_id: str) -> None:
    """Wake a run waiting (paused or suspended) for a decision; a run not waiting is left."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    if run.state is not None and run.state.type is StateType.PAUSED:
        resume_flow_run(UUID(run_id))
