"""Policy section 3: the gates before production, from the evidence at hand."""

from __future__ import annotations

from domain.events import EventType
from domain.gates import evaluate_gates, gates_block
from domain.host_gates import HostEvidence, host_sast_gate, joined_with_pull_request
from domain.models import ChangeRequest, GateResult, GateStatus
from integrations.factory import Adapters
from tasks.approvals import verdict
from tasks.code_host import gate_evidence, needs_host
from tasks.common import ChangeStopped, events_of, record, step
from tasks.tickets import tell


def evidence_now(a: Adapters, change: ChangeRequest) -> ChangeRequest:
    """The change with the staging result the change log holds."""
    staged = events_of(a, change, EventType.STAGING_PASSED, EventType.STAGING_FAILED)
    passed = staged[-1].type == EventType.STAGING_PASSED if staged else None
    return change.model_copy(update={"evidence": change.evidence.model_copy(
        update={"staging_passed": passed})})


def preview_gates(a: Adapters, change: ChangeRequest,
                  host: HostEvidence | str | None = None) -> list[GateResult]:
    """The gates as they stand now, for an approver's form (nothing recorded).

    With a code host, `host` is its evidence (read here when not given). The pull
    request's current paths and writers join the change's, so a push that touches
    authentication code after the review asks for Security's approval, and an approver
    who pushed a commit since no longer counts, before production.
    """
    policy = a.config.policy
    if host is None and needs_host(a, change):
        host = gate_evidence(a, change)
    if isinstance(host, HostEvidence):
        pr = host.pull_request
        change = joined_with_pull_request(change, pr.changed_paths, pr.writers,
                                          a.config.roster)
    return evaluate_gates(evidence_now(a, change), policy, a.config.roster,
                          verdict(a, change),
                          bypassed=set(policy.categories[change.category].bypassable_gates),
                          host=host, now=a.now())


def record_host_evidence(a: Adapters, change: ChangeRequest, host: HostEvidence) -> None:
    """Record what the code host said, and every SAST waiver the gate applied."""
    pr = host.pull_request
    record(a, change.id, EventType.CODE_HOST_READ, pull_request=f"{pr.repo}#{pr.number}",
           url=pr.url, head_sha=pr.head_sha, author=pr.author,
           reviews=[{"reviewer": r.reviewer, "state": r.state, "commit": r.commit_sha}
                    for r in pr.reviews],
           required_checks=host.required_checks, required_from=host.required_from,
           checks=[{"name": c.name, "status": c.status, "conclusion": c.conclusion}
                   for c in host.check_runs],
           scan=host.scan_source, analysed=host.scan.analysed,
           open_alerts=[{"number": x.number, "severity": x.severity, "rule": x.rule_id}
                        for x in host.scan.alerts if x.state == "open"],
           changed_paths=pr.changed_paths, commit_logins=pr.commit_logins)
    _, applied = host_sast_gate(change, host, a.config.policy, a.config.roster, a.now())
    for waiver in applied:
        record(a, change.id, EventType.SAST_WAIVER_APPLIED, waiver.approved_by,
               **waiver.model_dump(mode="json"), head_sha=pr.head_sha)


@step("evaluate-gates")
def check_gates(a: Adapters, change: ChangeRequest) -> list[GateResult]:
    """Evaluate and record the gates; a failed or undecidable gate blocks.

    A gate the category may bypass (an emergency's code review and staging) is recorded
    as bypassed, by name, each on its own event, for the quarterly report.

    Raises:
        ChangeStopped: a gate blocks; every reason is recorded and on the ticket.
    """
    host = gate_evidence(a, change) if needs_host(a, change) else None
    if isinstance(host, HostEvidence):
        record_host_evidence(a, change, host)
    results = preview_gates(a, change, host)
    blocking = gates_block(results)
    for gate in results:
        if gate.status is GateStatus.BYPASSED:
            record(a, change.id, EventType.GATE_BYPASSED, gate=gate.gate, reason=gate.reason,
                   category=change.category.value)
    record(a, change.id, EventType.GATES_BLOCKED if blocking else EventType.GATES_PASSED,
           gates=[g.model_dump(mode="json") for g in results])
    if blocking:
        reasons = [f"{g.gate}: {g.reason}" for g in blocking]
        tell(a, change.id, "Blocked before production:\n- " + "\n- ".join(reasons))
        raise ChangeStopped(f"{change.id}: blocked by gates: " + "; ".join(reasons))
    return results
