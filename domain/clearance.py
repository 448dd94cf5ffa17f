"""Whether a change's record clears it for production: the record decides (section 4).

Before a production side effect (scheduling the deploy, deploying, closing as succeeded)
the change's state is folded from its verified events, and its recorded approvals and
gate results are judged again here, whatever any step decided before. A record that does
not clear stops the change.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from enum import StrEnum

from domain.approvals import ApprovalVerdict, check_approvals, required_approvals
from domain.events import CodeHostRead, EventType, payload_of
from domain.gates import NOT_EVALUATED, recorded_gate_gaps
from domain.history import approvals_of, last_gates, submitted_change
from domain.host_gates import joined_with_pull_request
from domain.lifecycle import fold
from domain.models import ChangeEvent, ChangeRequest, GateResult, Roster
from domain.policy import Policy
from domain.standard import required_gates


class Action(StrEnum):
    """The production side effects the record must clear."""

    SCHEDULE = "schedule the deployment"
    DEPLOY = "deploy to production"
    CLOSE_SUCCEEDED = "close as succeeded"


CLEARED_STATES: dict[Action, tuple[str, ...]] = {
    Action.SCHEDULE: ("ready", "scheduled"),
    # a deploy that died is recovered from where it stopped (see flows.lifecycle)
    Action.DEPLOY: ("ready", "scheduled", "deploying", "deployed"),
    Action.CLOSE_SUCCEEDED: ("succeeded",),
}
"""The states from which the record lets each action happen."""


def production_clearance(action: Action, state: str, approvals: ApprovalVerdict,
                         gates: Sequence[GateResult] | None, required_gates: Sequence[str],
                         bypassable: Collection[str]) -> list[str]:
    """Why the record does not clear `action`; [] when it does.

    Args:
        action: what is about to happen.
        state: the change's state, folded from its verified events.
        approvals: the domain's verdict on its recorded approvals.
        gates: the results of its last recorded gate evaluation; None if none.
        required_gates: the gates its category (or standard procedure) requires.
        bypassable: the gates its category may bypass.
    """
    problems = []
    if state not in CLEARED_STATES[action]:
        problems.append(f"its record is in state {state!r}, from which changeflow may not "
                        f"{action.value} (it may from: {', '.join(CLEARED_STATES[action])})")
    if approvals.declined or approvals.missing or not approvals.satisfied:
        why = approvals.problems or [f"missing approval: {r}" for r in approvals.missing]
        problems.append("its recorded approvals do not clear it: " + "; ".join(why))
    if gates is None:
        problems.append("no gate evaluation is recorded")
    else:
        gaps = recorded_gate_gaps({g.gate: g.status for g in gates}, required_gates,
                                  bypassable)
        blocking = [f"{gate} {what}" for gate, what in gaps if what != NOT_EVALUATED]
        missing = [gate for gate, what in gaps if what == NOT_EVALUATED]
        if blocking:
            problems.append("its recorded gates block: " + "; ".join(blocking))
        if missing:
            problems.append(f"required gates with no recorded result: {', '.join(missing)}")
    return problems


def record_clearance(action: Action, events: Sequence[ChangeEvent], change: ChangeRequest,
                     policy: Policy, roster: Roster) -> list[str]:
    """Why a change's verified events do not clear `action`; [] when they do.

    Everything is judged from the events alone: the state is their fold, the change is
    the one its submission recorded (its category, procedure and paths, with the paths and
    writers the code host reported since, decide which approvals and gates it needs and
    who may not approve it), the approvals and gates are the recorded ones. The `change`
    about to be acted on must be that recorded change.

    Args:
        action: what is about to happen.
        events: the change's events, each verified (hash, MAC, place in the chain).
        change: the change the run is about to act on.
        policy: the policy in force.
        roster: the roster in force.
    """
    recorded = submitted_change(events)
    if recorded is None:
        return [f"{change.id}: no submission is recorded, so nothing was approved"]
    problems = []
    was, now = recorded.model_dump(mode="json"), change.model_dump(mode="json")
    if was != now:
        differ = sorted(k for k, v in was.items() if now.get(k) != v)
        problems.append(f"the change about to {action.value} is not the change recorded at "
                        f"submission (it differs in: {', '.join(differ)})")
    for e in events:  # what the code host was recorded to say counts too
        if e.type == EventType.CODE_HOST_READ:
            read = payload_of(e, CodeHostRead)
            recorded = joined_with_pull_request(recorded, read.changed_paths,
                                                [read.author, *read.commit_logins], roster)
    needed = {role for r in required_approvals(recorded, policy)
              for role in (r.role, r.fallback_role) if role}
    given = [x for x in approvals_of(events) if x.role in needed]
    verdict = check_approvals(recorded, given, policy, roster)
    return problems + production_clearance(
        action, fold(events).state, verdict, last_gates(events),
        required_gates(recorded, policy), policy.categories[recorded.category].bypassable_gates)
