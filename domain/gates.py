"""The gates required before production (policy section 3), each with its reason.

Fail closed: a gate whose evidence is missing or cannot be read is UNKNOWN, one whose
evidence is still to come in the process (an approval being asked, staging not yet run)
is PENDING, and both block like FAILED. Only the gates the change's category lists are
evaluated; only those the category lists as bypassable may be bypassed, and a bypass is
recorded by name.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Set
from datetime import UTC, datetime
from functools import partial

from domain.approvals import ApprovalVerdict
from domain.host_gates import (
    HOST_GATES,
    HostEvidence,
    deployed_is_reviewed,
    host_ci_gate,
    host_code_review_gate,
    host_sast_gate,
)
from domain.models import (
    ChangeRequest,
    Evidence,
    EvidenceSource,
    GateResult,
    GateStatus,
    Roster,
)
from domain.policy import Policy
from domain.rollback import missing_rollback_fields
from domain.standard import required_gates

CI_PASSED = "passed"
"""The CI status that passes the automated-tests gate."""

CI_IN_PROGRESS = frozenset({"pending", "queued", "running", "in_progress", "waiting"})
"""CI statuses that mean "not finished yet": UNKNOWN (blocks) rather than FAILED."""


def _result(gate: str, status: GateStatus, reason: str) -> GateResult:
    return GateResult(gate=gate, status=status, reason=reason)


def code_review_gate(change: ChangeRequest, policy: Policy, roster: Roster) -> GateResult:
    """At least `min_reviewers` distinct roster reviewers, `min_senior` of them senior.

    Reviewers who are unknown, shared accounts or (unless the policy allows it) the
    author are not counted, and the reason says so.
    """
    gate, rules = "code_review", policy.gates.code_review
    review = change.evidence.code_review
    if review is None:
        return _result(gate, GateStatus.UNKNOWN, "no code review evidence")
    counted: list[str] = []
    seniors: list[str] = []
    excluded: list[str] = []
    for rid in dict.fromkeys(review.reviewers):  # distinct, in order
        person = roster.get(rid)
        if person is None:
            excluded.append(f"{rid!r} is not in the roster")
        elif person.shared_account:
            excluded.append(f"{rid!r} is a shared account")
        elif change.by(rid) and not rules.author_may_review:
            excluded.append(f"{rid!r} is the author")
        else:
            counted.append(rid)
            if person.senior:
                seniors.append(rid)
    summary = (f"{len(counted)} reviewer(s) counted ({', '.join(counted) or 'none'}), "
               f"{len(seniors)} senior ({', '.join(seniors) or 'none'})")
    if excluded:
        summary += f"; not counted: {'; '.join(excluded)}"
    if len(counted) >= rules.min_reviewers and len(seniors) >= rules.min_senior:
        return _result(gate, GateStatus.PASSED, summary)
    need = f"needs {rules.min_reviewers} reviewer(s), {rules.min_senior} senior"
    return _result(gate, GateStatus.FAILED, f"{need}: {summary}")


def automated_tests_gate(evidence: Evidence) -> GateResult:
    """The CI pipeline passed with no failing test."""
    gate, ci = "automated_tests", evidence.ci
    if ci is None or ci.status is None:
        return _result(gate, GateStatus.UNKNOWN, "no CI result")
    status = ci.status.strip().lower()
    if status in CI_IN_PROGRESS:
        return _result(gate, GateStatus.UNKNOWN, f"CI has not finished (status {ci.status!r})")
    if status != CI_PASSED:
        return _result(gate, GateStatus.FAILED, f"CI status is {ci.status!r}, not 'passed'")
    if ci.failed_tests:
        return _result(gate, GateStatus.FAILED,
                       f"CI passed but reports {ci.failed_tests} failing test(s)")
    return _result(gate, GateStatus.PASSED, "CI passed with no failing tests")


def security_scan_gate(evidence: Evidence, policy: Policy) -> GateResult:
    """No open SAST finding of a blocking severity (critical and high by default)."""
    gate, sast = "security_scan", evidence.sast
    severities = policy.gates.security_scan.blocking_severities
    if sast is None:
        return _result(gate, GateStatus.UNKNOWN, "no SAST result")
    counts = {sev: getattr(sast, sev, None) for sev in severities}
    open_ = {sev: n for sev, n in counts.items() if n}
    unknown = [sev for sev, n in counts.items() if n is None]
    if open_:
        listed = ", ".join(f"{n} {sev}" for sev, n in open_.items())
        return _result(gate, GateStatus.FAILED, f"open SAST findings: {listed}")
    if unknown:
        return _result(gate, GateStatus.UNKNOWN,
                       f"SAST result has no count of {', '.join(unknown)} findings")
    return _result(gate, GateStatus.PASSED,
                   f"no open {'/'.join(severities)} SAST findings")


def staging_validation_gate(evidence: Evidence) -> GateResult:
    """The change passed in staging."""
    gate = "staging_validation"
    if evidence.staging_passed is None:
        return _result(gate, GateStatus.PENDING, "staging has not run yet")
    if evidence.staging_passed:
        return _result(gate, GateStatus.PASSED, "staging validation passed")
    return _result(gate, GateStatus.FAILED, "staging validation failed")


def rollback_plan_gate(change: ChangeRequest, policy: Policy, roster: Roster) -> GateResult:
    """The rollback plan has every required part (`missing_rollback_fields`)."""
    missing = missing_rollback_fields(change.rollback_plan, policy, roster)
    if missing:
        return _result("rollback_plan", GateStatus.FAILED,
                       f"rollback plan incomplete: {', '.join(missing)}")
    return _result("rollback_plan", GateStatus.PASSED, "rollback plan complete")


def approval_gate(verdict: ApprovalVerdict) -> GateResult:
    """The category's approvals are obtained (the verdict of `check_approvals`)."""
    gate = "approval"
    if verdict.satisfied:
        by = ", ".join(f"{role}: {pid}" for role, pid in verdict.approvers.items())
        return _result(gate, GateStatus.PASSED, f"approved ({by})")
    parts = (["declined"] if verdict.declined else []) + (
        [f"missing: {', '.join(verdict.missing)}"] if verdict.missing else [])
    if not parts:  # an unsatisfied verdict that says neither: do not guess
        return _result(gate, GateStatus.UNKNOWN, "approval verdict is inconsistent")
    if not verdict.declined and not verdict.problems:  # only not given yet
        return _result(gate, GateStatus.PENDING, f"not yet given: {', '.join(verdict.missing)}")
    detail = f" ({'; '.join(verdict.problems)})" if verdict.problems else ""
    return _result(gate, GateStatus.FAILED, f"{'; '.join(parts)}{detail}")


def evaluate_gates(change: ChangeRequest, policy: Policy, roster: Roster,
                   approvals_verdict: ApprovalVerdict,
                   bypassed: Set[str] = frozenset(), host: HostEvidence | str | None = None,
                   now: datetime | None = None) -> list[GateResult]:
    """Evaluate the gates the change needs (`required_gates`), in the policy's order.

    Args:
        change: the change request, with its evidence.
        policy: the policy (which gates per category, gate parameters).
        roster: who the reviewers and the rollback owner are.
        approvals_verdict: `check_approvals` for this change.
        bypassed: gates to record as BYPASSED (the emergency process).
        host: with a code host configured, what it says about the change's pull request
            (the code-review, CI and SAST gates are then judged on it, not on the
            ticket), or why it could not be read (those gates are then UNKNOWN).
        now: the time waivers are judged at (needed with `host`).

    Returns:
        One result per gate of the category, each with its reason.

    Raises:
        ValueError: a gate in `bypassed` is not bypassable for the change's category.
    """
    spec = policy.categories[change.category]
    refused = sorted(set(bypassed) - set(spec.bypassable_gates))
    if refused:
        allowed = ", ".join(spec.bypassable_gates) or "none"
        raise ValueError(f"{change.category.value} changes may not bypass "
                         f"{', '.join(refused)} (bypassable: {allowed})")
    ev = change.evidence
    evaluators: dict[str, Callable[[], GateResult]] = {
        "code_review": lambda: code_review_gate(change, policy, roster),
        "automated_tests": lambda: automated_tests_gate(ev),
        "security_scan": lambda: security_scan_gate(ev, policy),
        "staging_validation": lambda: staging_validation_gate(ev),
        "rollback_plan": lambda: rollback_plan_gate(change, policy, roster),
        "approval": lambda: approval_gate(approvals_verdict),
    }
    results: list[GateResult] = []
    if isinstance(host, str):
        for gate in HOST_GATES:
            evaluators[gate] = partial(_result, gate, GateStatus.UNKNOWN, host)
    elif host is not None:
        at = now or datetime.now(UTC)
        pr = host.pull_request
        evaluators["code_review"] = lambda: _reviewed_and_deployed(
            host_code_review_gate(change.author, pr, policy, roster),
            deployed_is_reviewed(host, change.version))
        evaluators["automated_tests"] = lambda: host_ci_gate(
            host.required_checks, host.required_from, host.check_runs, pr.head_sha)
        evaluators["security_scan"] = lambda: host_sast_gate(change, host, policy, roster,
                                                             at)[0]
    for gate in required_gates(change, policy):
        if gate in bypassed:
            results.append(_result(gate, GateStatus.BYPASSED,
                                   f"bypassed under the {change.category.value} process "
                                   "(allowed by the policy; tracked for the quarterly "
                                   "report)"))
        elif gate in evaluators:
            results.append(_sourced(evaluators[gate](), source_of(gate, host is not None),
                                    policy))
        else:
            results.append(_result(gate, GateStatus.UNKNOWN, f"no rule for gate {gate!r}"))
    return results


def _reviewed_and_deployed(review: GateResult, mismatch: str | None) -> GateResult:
    """The code-review gate, FAILED when the version to deploy is not the reviewed code."""
    if mismatch is None:
        return review
    return review.model_copy(update={"status": GateStatus.FAILED,
                                     "reason": f"{mismatch}; {review.reason}"})


def source_of(gate: str, code_host: bool) -> EvidenceSource:
    """Where `gate`'s evidence comes from.

    The code host's three gates come from it when one is configured and from the
    ticket's claims when not; the rest from changeflow.
    """
    if gate in HOST_GATES:
        return "code_host" if code_host else "ticket"
    return "changeflow"


def _sourced(result: GateResult, source: EvidenceSource, policy: Policy) -> GateResult:
    """`result` marked with its source; FAILED when the policy does not accept that source."""
    if policy.gates.accepts(result.gate, source):
        return result.model_copy(update={"source": source})
    return GateResult(gate=result.gate, status=GateStatus.FAILED, source=source,
                      reason=f"{_refused_source(result.gate, source, policy)} (the "
                      f"{source}'s evidence said: {result.reason})")


def _refused_source(gate: str, source: EvidenceSource, policy: Policy) -> str:
    accepted = policy.gates.sources(gate)
    fix = ("; configure the code host (CHANGEFLOW_CODE_HOST=github)"
           if source == "ticket" and "code_host" in accepted else "")
    return (f"the policy does not accept evidence from the {source} for {gate} "
            f"(gates.evidence_sources.{gate}: {', '.join(accepted)}){fix}")


def unaccepted_evidence(change: ChangeRequest, policy: Policy, code_host: bool) -> list[str]:
    """At submit: the gates whose evidence could only come from a source the policy refuses.

    Each is named with how to fix it, before anybody is asked to approve.
    """
    bypassable = set(policy.categories[change.category].bypassable_gates)
    return [f"{gate}: {_refused_source(gate, source_of(gate, code_host), policy)}"
            for gate in required_gates(change, policy)
            if gate not in bypassable
            and not policy.gates.accepts(gate, source_of(gate, code_host))]


def gates_block(results: Iterable[GateResult]) -> list[GateResult]:
    """The results that stop the change: FAILED, UNKNOWN or PENDING."""
    return [r for r in results if r.blocks]


NOT_EVALUATED = "not evaluated"


def recorded_gate_gaps(statuses: Mapping[str, GateStatus], required: Sequence[str],
                       bypassable: Collection[str]) -> list[tuple[str, str]]:
    """What recorded gate results leave open before production, as (gate, what) pairs.

    The one judge of a recorded evaluation, for the flows' clearance and the report's
    control alike: a required gate with no result (`NOT_EVALUATED`), a result that
    blocks (its status), or a bypass the category may not make ("bypassed"). Required
    gates come first, in their order; [] when the results clear production.
    """
    gaps = [(gate, NOT_EVALUATED) for gate in required if gate not in statuses]
    gaps += [(gate, status.value) for gate, status in statuses.items()
             if status.blocks or (status is GateStatus.BYPASSED and gate not in bypassable)]
    order = {gate: i for i, gate in enumerate(required)}
    return sorted(gaps, key=lambda g: order.get(g[0], len(order)))
