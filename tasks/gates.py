"""Policy section 3: the gates before production, from the evidence at hand."""

from __future__ import annotations

from domain.gates import evaluate_gates, gates_block
from domain.models import ChangeRequest, GateResult, GateStatus
from integrations.factory import Adapters
from tasks.approvals import verdict
from tasks.common import ChangeStopped, events_of, record, step
from tasks.tickets import tell


def evidence_now(a: Adapters, change: ChangeRequest) -> ChangeRequest:
    """The change with the staging result the change log holds."""
    staged = events_of(a, change, "staging_passed", "staging_failed")
    passed = staged[-1].type == "staging_passed" if staged else None
    return change.model_copy(update={"evidence": change.evidence.model_copy(
        update={"staging_passed": passed})})


def preview_gates(a: Adapters, change: ChangeRequest) -> list[GateResult]:
    """The gates as they stand now, for an approver's form (nothing recorded)."""
    policy = a.config.policy
    return evaluate_gates(evidence_now(a, change), policy, a.config.roster,
                          verdict(a, change),
                          bypassed=set(policy.categories[change.category].bypassable_gates))


@step("evaluate-gates")
def check_gates(a: Adapters, change: ChangeRequest) -> list[GateResult]:
    """Evaluate and record the gates; a failed or undecidable gate blocks.

    A gate the category may bypass (an emergency's code review and staging) is recorded
    as bypassed, by name, each on its own event, for the quarterly report.

    Raises:
        ChangeStopped: a gate blocks; every reason is recorded and on the ticket.
    """
    results = preview_gates(a, change)
    blocking = gates_block(results)
    for gate in results:
        if gate.status is GateStatus.BYPASSED:
            record(a, change.id, "gate_bypassed", gate=gate.gate, reason=gate.reason,
                   category=change.category.value)
    record(a, change.id, "gates_blocked" if blocking else "gates_passed",
           gates=[g.model_dump(mode="json") for g in results])
    if blocking:
        reasons = [f"{g.gate}: {g.reason}" for g in blocking]
        tell(a, change.id, "Blocked before production:\n- " + "\n- ".join(reasons))
        raise ChangeStopped(f"{change.id}: blocked by gates: " + "; ".join(reasons))
    return results
