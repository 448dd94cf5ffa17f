"""Whether a change's record clears it for production: the record decides (section 4).

Before a production side effect (scheduling the deploy, deploying, closing as succeeded)
the change's state is folded from its verified events, and its recorded approvals and
gate results are judged again here, whatever any step decided before. A record that does
not clear stops the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from domain.approvals import ApprovalVerdict
from domain.gates import gates_block
from domain.models import GateResult


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
                         gates: Sequence[GateResult] | None,
                         required_gates: Sequence[str]) -> list[str]:
    """Why the record does not clear `action`; [] when it does.

    Args:
        action: what is about to happen.
        state: the change's state, folded from its verified events.
        approvals: the domain's verdict on its recorded approvals.
        gates: the results of its last recorded gate evaluation; None if none.
        required_gates: the gates its category (or standard procedure) requires.
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
        blocking = gates_block(gates)
        evaluated = {g.gate for g in gates}
        missing = [g for g in required_gates if g not in evaluated]
        if blocking:
            problems.append("its recorded gates block: " + "; ".join(
                f"{g.gate} {g.status.value}" for g in blocking))
        if missing:
            problems.append(f"required gates with no recorded result: {', '.join(missing)}")
    return problems
