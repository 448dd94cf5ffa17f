"""The quarterly report computed from change-log events: pure pandas, no I/O, no clock.

Scope: the changes that reached production in the quarter (their `deployment_started`
falls in it) and the changes submitted in it that never did. For each, every event
counts, whenever it happened, so an emergency's follow-up after the quarter's end shows.

Controls are judged only on what reached production (the gates are "before
production"). Each is a count, a rate and its exceptions, and each exception says which
change and why.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import orjson
import pandas as pd

from domain.approvals import check_approvals
from domain.emergency import Obligation, obligation_status
from domain.events import (
    PAYLOADS,
    ChangeSubmitted,
    EventType,
    GatesJudged,
    PracticeFinding,
)
from domain.gates import recorded_gate_gaps
from domain.lifecycle import NOT_CHANGES
from domain.models import Approval, Category, ChangeRequest, GateStatus, Roster
from domain.policy import Policy
from domain.schedule import slot_allowed
from domain.standard import gates_for
from reporting.model import Quarter, QuarterlyReport

OUTCOMES = ["succeeded", "rolled_back", "failed", "rejected", "expired", "cancelled", "open"]
PARSED = frozenset({
    EventType.CHANGE_SUBMITTED, EventType.APPROVAL_RECORDED, EventType.GATES_PASSED,
    EventType.GATES_BLOCKED, EventType.DEPLOYMENT_SCHEDULED, EventType.ROLLBACK_SUCCEEDED,
    EventType.ROLLBACK_FAILED, EventType.INCIDENT_OPENED, EventType.INCIDENT_REVIEWED,
    EventType.OBLIGATION_OPENED, EventType.OBLIGATION_RESPONDED, EventType.VERIFICATION_FAILED,
    EventType.DEPLOYMENT_FAILED})
"""Event types whose payload the report reads; other payloads are never parsed."""

FINDINGS_NOTE = ("No prohibited-practice audit ran in this quarter: the practices-audit "
                 "flow (policy section 6, daily) records its runs and findings here.")
FINDING_COLUMNS = ["practice", "change_id", "detail", "found_at", "finding_id", "service"]


def _findings(events: pd.DataFrame, quarter: Quarter, start: datetime,
              end: datetime) -> tuple[pd.DataFrame, str]:
    """The practices audit's findings recorded in the quarter, and a note if it never ran."""
    during = events[(events["at"] >= start) & (events["at"] < end)]
    audits = int((during["type"] == EventType.PRACTICES_AUDITED).sum())
    rows = []
    findings = during.loc[during["type"] == EventType.PRACTICE_FINDING]
    for at, text in zip(findings["at"].tolist(), findings["payload"].tolist(), strict=True):
        p = PracticeFinding.model_validate_json(text)
        rows.append({"practice": p.practice, "change_id": p.related_change or "-",
                     "detail": p.detail, "found_at": at, "finding_id": p.finding_id,
                     "service": p.service})
    frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    return frame, "" if audits or rows else FINDINGS_NOTE


def _records(records: pd.DataFrame) -> pd.DataFrame:
    rows = [orjson.loads(text) for text in records["record"].tolist()]
    frame = pd.DataFrame(rows, columns=["change_id", "category", "reclassified_from", "summary",
                                        "description", "service", "version", "author",
                                        "approvers", "deployed_at", "opened_at", "outcome",
                                        "state", "incidents", "obligations"])
    for column in ("deployed_at", "opened_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def _slim(type_: str, text: str) -> Any:
    """What the report reads of a payload, through its model; a quarter's are held at once.

    A gate evaluation is kept as {gate: (status, source)}; a submitted change as its JSON text,
    parsed (`_submitted`) only where the report needs the change; any other payload as
    its model.
    """
    if type_ in (EventType.GATES_PASSED, EventType.GATES_BLOCKED):
        return {g.gate: (g.status.value, g.source)
                for g in GatesJudged.model_validate_json(text).gates}
    if type_ == EventType.CHANGE_SUBMITTED:
        return text
    return PAYLOADS[EventType(type_)].model_validate_json(text)


class _Facts:
    """Per change: its record, and its events by type (payloads parsed once)."""

    def __init__(self, records: pd.DataFrame, events: pd.DataFrame) -> None:
        self.records: dict[str, dict[str, Any]] = {
            str(r["change_id"]): {str(k): v for k, v in r.items()}
            for r in records.to_dict("records")}
        wanted = events[events["type"].isin(PARSED)]
        self.by_type: dict[str, dict[str, list[tuple[datetime, str, Any]]]] = {}
        times = list(wanted["at"].dt.to_pydatetime()) if len(wanted) else []
        for change_id, type_, at, actor, payload in zip(
                wanted["change_id"].tolist(), wanted["type"].tolist(), times,
                wanted["actor"].tolist(), wanted["payload"].tolist(), strict=True):
            self.by_type.setdefault(type_, {}).setdefault(change_id, []).append(
                (at, actor, _slim(type_, payload)))
        starts = events[events["type"] == EventType.DEPLOYMENT_STARTED].drop_duplicates("change_id")
        self.started: dict[str, datetime] = dict(zip(
            starts["change_id"].tolist(),
            list(starts["at"].dt.to_pydatetime()) if len(starts) else [], strict=True))
        self.approvals: dict[str, list[Approval]] = {}

    def started_at(self, change_id: str) -> datetime:
        """When the change's (first) production deployment started; it must have one."""
        return self.started[change_id]

    def category(self, change_id: str) -> Category | None:
        """The change's category as recorded (after any reclassification)."""
        value = self.records[change_id].get("category")
        return Category(value) if value else None

    def of(self, type_: str, change_id: str) -> list[tuple[datetime, str, Any]]:
        """The change's events of `type_`: (time, actor, what `_slim` kept of the payload)."""
        return self.by_type.get(type_, {}).get(change_id, [])

    def last(self, type_: str, change_id: str) -> tuple[datetime, str, Any] | None:
        """The change's last event of `type_` (see `of`), or None."""
        found = self.of(type_, change_id)
        return found[-1] if found else None

    def submitted(self, change_id: str) -> ChangeRequest | None:
        """The change as its submission recorded it (parsed now, not kept), or None."""
        found = self.last(EventType.CHANGE_SUBMITTED, change_id)
        return None if found is None else ChangeSubmitted.model_validate_json(found[2]).change


@contextmanager
def collecting_later() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block.

    Reading a quarter allocates millions of objects and frees none of them; the collector
    ran 11 full collections over them, a third of the time, for nothing. Reference
    counting still frees as usual.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def build_report(quarter: Quarter, records: pd.DataFrame, events: pd.DataFrame,
                 policy: Policy, roster: Roster, chain: dict[str, Any],
                 generated_at: datetime) -> QuarterlyReport:
    """Compute the quarter's report.

    Args:
        quarter: the quarter.
        records: `change_id`, `record` (the change's projected record as JSON text).
        events: every event of those changes (`integrations.changelog_frames`).
        policy: the policy (windows, notice, gates, emergency deadlines).
        roster: who holds which role, who is a shared account.
        chain: the change log's verification (ok, checked, head_seq, head_hash, problem).
        generated_at: now (UTC); open obligations are judged against it.
    """
    with collecting_later():
        return _build(quarter, records, events, policy, roster, chain, generated_at)


def _build(quarter: Quarter, records: pd.DataFrame, events: pd.DataFrame, policy: Policy,
           roster: Roster, chain: dict[str, Any], generated_at: datetime) -> QuarterlyReport:
    start, end = quarter.bounds(policy.schedule.zone)
    everything = _records(records) if len(records) else _records(
        pd.DataFrame(columns=["change_id", "record"]))
    everything = everything[~everything["state"].isin(NOT_CHANGES)].reset_index(drop=True)
    findings, findings_note = _findings(events, quarter, start, end)
    facts = _Facts(everything, events)
    deployed: pd.Series[Any] = pd.to_datetime(
        everything["change_id"].map(facts.started), utc=True) if len(everything) else pd.Series(
        [], dtype="datetime64[ns, UTC]")
    everything["deployed_at"] = deployed
    bounds = pd.Timestamp(start), pd.Timestamp(end)
    opened = everything["opened_at"]
    in_scope = ((deployed >= bounds[0]) & (deployed < bounds[1])) | (
        deployed.isna() & (opened >= bounds[0]) & (opened < bounds[1]))
    scope = everything[in_scope.fillna(False)].copy()
    changes = _changes(scope, policy)
    production = scope[scope["deployed_at"].notna()]
    controls, exceptions = _controls(production, facts, policy, roster)
    rollbacks = _rollbacks(scope, facts, generated_at)
    quarter_events = int(((events["at"] >= start) & (events["at"] < end)).sum())
    return QuarterlyReport(
        quarter=quarter, generated_at=generated_at, policy=f"{policy.id} v{policy.version}",
        changes=changes, inventory=_inventory(changes, quarter), controls=controls,
        exceptions=exceptions, emergencies=_emergencies(scope, facts, policy, generated_at),
        rollbacks=rollbacks,
        findings=findings, findings_note=findings_note,
        metrics=_metrics(changes, scope, facts, rollbacks, start, end),
        chain={**chain, "quarter_events": quarter_events})


def _changes(scope: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    frame = pd.DataFrame({
        "change_id": scope["change_id"], "category": scope["category"],
        "reclassified_from": scope["reclassified_from"], "service": scope["service"],
        "version": scope["version"], "summary": scope["summary"], "author": scope["author"],
        "approvers": scope["approvers"].map(lambda a: ", ".join(a or [])),
        "submitted_at": scope["opened_at"], "deployed_at": scope["deployed_at"],
        "outcome": scope["outcome"].fillna("open"),
        "incidents": scope["incidents"].map(lambda i: ", ".join(i or []))})
    when = frame["deployed_at"].fillna(frame["submitted_at"])
    frame["month"] = (when.dt.tz_convert(policy.schedule.timezone).dt.strftime("%Y-%m")
                      if len(frame) else pd.Series([], dtype="object"))
    return frame.reset_index(drop=True)


def _inventory(changes: pd.DataFrame, quarter: Quarter) -> dict[str, pd.DataFrame]:
    by_outcome = pd.crosstab(changes["category"], changes["outcome"]).reindex(
        columns=[o for o in OUTCOMES if o in set(changes["outcome"])], fill_value=0)
    by_service = changes.groupby("service").agg(
        changes=("change_id", "count"),
        succeeded=("outcome", lambda o: int((o == "succeeded").sum())),
        rolled_back=("outcome", lambda o: int((o == "rolled_back").sum())),
        failed=("outcome", lambda o: int((o == "failed").sum()))).reset_index()
    by_month = pd.crosstab(changes["month"], changes["category"]).reindex(
        index=quarter.months(), fill_value=0)
    by_month.index.name = "month"
    return {"by_category_outcome": by_outcome.reset_index(), "by_service": by_service,
            "by_month": by_month.reset_index()}


Check = Callable[[str], str | None]
PER_CATEGORY = "approvals obtained"
"""The control also broken down by category (section 1: each category its approvals)."""


def _controls(production: pd.DataFrame, facts: _Facts, policy: Policy,
              roster: Roster) -> tuple[pd.DataFrame, pd.DataFrame]:
    windowed = {c.value for c, spec in policy.categories.items() if spec.deploy_at == "window"}
    rolled = set(facts.by_type.get(EventType.ROLLBACK_SUCCEEDED, {})) | set(
        facts.by_type.get(EventType.ROLLBACK_FAILED, {}))
    everyone = pd.Series(True, index=production.index)
    in_window = production["category"].isin(windowed)
    checks: list[tuple[str, str, pd.Series[bool], Check]] = [
        ("record complete", "section 7: change ID, description, author, approvers, "
         "deployment date, outcome, incidents", everyone,
         lambda cid: _record_gaps(facts.records[cid])),
        ("approvals obtained", "section 1: the category's approvals, judged by the roster",
         everyone, lambda cid: _approval_gaps(facts, cid, policy, roster)),
        ("separation of duties", "sections 1 and 6: no author or writer of the change "
         "approving (but a standard self-approval), no shared account, a verbal approval "
         "recorded by someone else, one person per role", everyone,
         lambda cid: _duty_gaps(facts, cid, policy, roster)),
        ("gates passed before production", "section 3: every gate passed (or bypassed "
         "where the policy allows) before the deployment started", everyone,
         lambda cid: _gate_gaps(facts, cid, policy)),
        ("gate evidence from the code host", "section 3: code review, CI and SAST read "
         "from the code host, not taken from the ticket's claim", everyone,
         lambda cid: _claimed_gates(facts, cid)),
        ("notice given", f"section 2.4: stakeholders told {policy.schedule.notice_hours} "
         "hours or more before the deployment", in_window,
         lambda cid: _notice_gap(facts, cid, policy)),
        ("maintenance window", "section 2.4: deployed inside a maintenance window, outside "
         "peak hours and freezes", in_window, lambda cid: _window_gap(facts, cid, policy)),
        ("rollback documented as incident", "section 4: every executed rollback opens an "
         f"incident of P{policy.rollback.incident_priority} or worse",
         production["change_id"].isin(rolled), lambda cid: _incident_gap(facts, cid, policy)),
    ]
    rows, exceptions = [], []
    for name, requirement, applies, check in checks:
        applicable = production[applies]
        failed = [(cid, why) for cid in applicable["change_id"] if (why := check(cid))]
        exceptions += [{"control": name, "change_id": cid, "detail": why} for cid, why in failed]
        rows.append(_row(name, requirement, len(applicable), len(failed)))
        if name == PER_CATEGORY:
            bad = {cid for cid, _ in failed}
            for category, group in applicable.groupby("category"):
                misses = len(bad & set(group["change_id"]))
                rows.append(_row(f"{name} ({category})", f"{requirement}; {category} changes",
                                 len(group), misses))
    return (pd.DataFrame(rows), pd.DataFrame(exceptions,
                                             columns=["control", "change_id", "detail"]))


def _row(control: str, requirement: str, applicable: int, failed: int) -> dict[str, Any]:
    return {"control": control, "requirement": requirement, "applicable": applicable,
            "passed": applicable - failed,
            "rate": (applicable - failed) / applicable if applicable else float("nan"),
            "exceptions": failed}


def _record_gaps(record: dict[str, Any]) -> str | None:
    missing = [name for name, ok in (
        ("description", bool(str(record["description"] or "").strip())),
        ("author", bool(record["author"])), ("approvers", bool(record["approvers"])),
        ("deployment date", pd.notna(record["deployed_at"])),
        ("outcome", bool(record["outcome"]))) if not ok]
    return f"missing {', '.join(missing)}" if missing else None


def _change(facts: _Facts, cid: str) -> ChangeRequest | None:
    change = facts.submitted(cid)
    if change is None:
        return None
    category = facts.category(cid)
    return change.model_copy(update={"category": category}) if category else change


def _approvals(facts: _Facts, cid: str) -> list[Approval]:
    if cid not in facts.approvals:  # read by two controls
        facts.approvals[cid] = _read_approvals(facts, cid)
    return facts.approvals[cid]


def _read_approvals(facts: _Facts, cid: str) -> list[Approval]:
    return [Approval(role=p.role, person_id=p.person_id, decision=p.decision, at=at,
                     channel=p.channel, fallback_reason=p.fallback_reason,
                     recorded_by=p.recorded_by)
            for at, _, p in facts.of(EventType.APPROVAL_RECORDED, cid)
            if p.purpose in ("review", "self-approval", "verbal-approval", "staging-sign-off")]


def _approval_gaps(facts: _Facts, cid: str, policy: Policy, roster: Roster) -> str | None:
    change = _change(facts, cid)
    if change is None:
        return "no submitted change in the log"
    verdict = check_approvals(change, _approvals(facts, cid), policy, roster)
    if verdict.satisfied:
        return None
    return "; ".join([f"missing {', '.join(verdict.missing)}"] * bool(verdict.missing)
                     + verdict.problems) or "not satisfied"


def _duty_gaps(facts: _Facts, cid: str, policy: Policy, roster: Roster) -> str | None:
    change = _change(facts, cid)
    if change is None:
        return None  # no submission: the approvals control names it
    verdict = check_approvals(change, _approvals(facts, cid), policy, roster)
    return "; ".join(verdict.duties) or None


def _gates_before(facts: _Facts, cid: str) -> dict[str, tuple[str, str]] | None:
    """The last gates passed before the deployment started: {gate: (status, source)}."""
    started = facts.started_at(cid)
    passed = [g for g in facts.of(EventType.GATES_PASSED, cid) if g[0] <= started]
    return passed[-1][2] if passed else None


def _claimed_gates(facts: _Facts, cid: str) -> str | None:
    judged = _gates_before(facts, cid)
    claimed = [g for g, (status, source) in (judged or {}).items()
               if source == "ticket" and status != "bypassed"]
    return f"taken from the ticket's claim: {', '.join(claimed)}" if claimed else None


def _gate_gaps(facts: _Facts, cid: str, policy: Policy) -> str | None:
    judged = _gates_before(facts, cid)
    if judged is None:
        return "no gates_passed before the deployment started"
    recorded = {gate: GateStatus(status) for gate, (status, _) in judged.items()}
    category = facts.category(cid)
    change = facts.submitted(cid) if category is Category.STANDARD else None
    needed = (gates_for(category, change.standard_procedure if change else None, policy)
              if category else list(recorded))
    bypassable = policy.categories[category].bypassable_gates if category else []
    gaps = recorded_gate_gaps(recorded, needed, bypassable)
    return "; ".join(f"{gate}: {what}" for gate, what in gaps) or None


def _notice_gap(facts: _Facts, cid: str, policy: Policy) -> str | None:
    scheduled = facts.last(EventType.DEPLOYMENT_SCHEDULED, cid)
    started = facts.started_at(cid)
    if scheduled is None:
        return "no deployment_scheduled: stakeholders were not told"
    told = datetime.fromisoformat(scheduled[2].notified_at)
    ahead = started - told
    if ahead < timedelta(hours=policy.schedule.notice_hours):
        return f"told {ahead.total_seconds() / 3600:.1f} h ahead"
    return None


def _window_gap(facts: _Facts, cid: str, policy: Policy) -> str | None:
    schedule = policy.schedule.model_copy(update={"notice_hours": 0})
    reasons = slot_allowed(facts.started_at(cid), schedule, notified_at=None)
    return "; ".join(reasons) or None


def _incident_gap(facts: _Facts, cid: str, policy: Policy) -> str | None:
    incidents = facts.of(EventType.INCIDENT_OPENED, cid)
    if not incidents:
        return "rolled back without an incident"
    worst = min(p.priority for _, _, p in incidents)
    if worst > policy.rollback.incident_priority:
        return f"incident P{worst} is milder than P{policy.rollback.incident_priority}"
    return None


def _obligation(item: dict[str, Any] | None, now: datetime) -> str:
    if not item:
        return "not opened"
    if item.get("outcome") == "refused":
        return f"refused by {item.get('closed_by')}"
    ob = Obligation(kind=item["kind"], due=item["due"], owner_role=item["owner_role"])
    closed = pd.Timestamp(item["closed_at"]).to_pydatetime() if item.get("closed_at") else None
    status = obligation_status(ob, closed, now)
    by = f" by {item.get('closed_by')}" if closed else ""
    return f"{status}{by} (due {pd.Timestamp(item['due']):%Y-%m-%d %H:%M} UTC)"


def _emergencies(scope: pd.DataFrame, facts: _Facts, policy: Policy,
                 now: datetime) -> pd.DataFrame:
    rows = []
    for _, rec in scope[scope["category"] == Category.EMERGENCY.value].iterrows():
        cid = rec["change_id"]
        verbal = next((p for _, _, p in facts.of(EventType.APPROVAL_RECORDED, cid)
                       if p.channel == "verbal"), None)
        change = facts.submitted(cid)
        obligations = rec["obligations"] or {}
        status = {k: _obligation(obligations.get(k), now) for k in (
            "approval_confirmation", "documentation", "post_hoc_review", "ciso_signoff")}
        open_items = [k for k, s in status.items() if not s.startswith(("met", "late"))]
        rows.append({
            "change_id": cid, "summary": rec["summary"],
            "trigger": change.emergency_trigger if change else None,
            "incident_ref": change.incident_ref if change else None,
            "deployed_at": rec["deployed_at"],
            "verbal_approver": verbal.person_id if verbal else None,
            "approver_role": verbal.role if verbal else None,
            "channel": verbal.via if verbal else None,
            "recorded_by": verbal.recorded_by if verbal else None,
            "fallback_reason": verbal.fallback_reason if verbal else None,
            "confirmation": status["approval_confirmation"],
            "documentation": status["documentation"],
            "post_hoc_review": status["post_hoc_review"],
            "ciso_signoff": status["ciso_signoff"], "open_items": ", ".join(open_items)})
    return pd.DataFrame(rows, columns=[
        "change_id", "summary", "trigger", "incident_ref", "deployed_at", "verbal_approver",
        "approver_role", "channel", "recorded_by", "fallback_reason", "confirmation",
        "documentation", "post_hoc_review", "ciso_signoff", "open_items"])


def _rollbacks(scope: pd.DataFrame, facts: _Facts, now: datetime) -> pd.DataFrame:
    rows = []
    for cid in scope["change_id"]:
        for type_ in (EventType.ROLLBACK_SUCCEEDED, EventType.ROLLBACK_FAILED):
            for at, _, p in facts.of(type_, cid):
                incident = facts.last(EventType.INCIDENT_OPENED, cid)
                ip = incident[2] if incident else None
                due = pd.Timestamp(ip.review_due) if ip else None
                reviewed = facts.last(EventType.INCIDENT_REVIEWED, cid)
                review = ("done" if reviewed else "none: no incident" if not ip
                          else "overdue" if due is not None and now > due else "open")
                estimate = p.estimate_minutes
                minutes = float(p.minutes)
                rows.append({
                    "change_id": cid, "rolled_back_at": at,
                    "rollback_minutes": minutes, "estimate_minutes": estimate,
                    "within_estimate": estimate is not None and minutes <= float(estimate),
                    "incident": ip.incident_id if ip else None,
                    "priority": ip.priority if ip else None,
                    "review_due": due, "review_status": review})
    return pd.DataFrame(rows, columns=[
        "change_id", "rolled_back_at", "rollback_minutes", "estimate_minutes",
        "within_estimate", "incident", "priority", "review_due", "review_status"])


def _metrics(changes: pd.DataFrame, scope: pd.DataFrame, facts: _Facts,
             rollbacks: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    deployed = changes[changes["deployed_at"].notna()]
    count = len(deployed)
    weeks = (end - start).total_seconds() / (7 * 86400)
    lead = (deployed["deployed_at"] - deployed["submitted_at"]).dt.total_seconds() / 3600
    failed = deployed[(deployed["outcome"].isin(["rolled_back", "failed"]))
                      | (deployed["incidents"] != "")]
    recovery = []
    for cid in failed["change_id"]:
        broke = (facts.last(EventType.VERIFICATION_FAILED, cid)
                 or facts.last(EventType.DEPLOYMENT_FAILED, cid))
        fixed = facts.last(EventType.ROLLBACK_SUCCEEDED, cid)
        if broke and fixed:
            recovery.append((fixed[0] - broke[0]).total_seconds() / 60)
    rework = 0  # only an emergency has a trigger
    for cid in deployed.loc[deployed["category"] == Category.EMERGENCY.value, "change_id"]:
        change = facts.submitted(cid)
        if change is not None and change.emergency_trigger == "p1_incident":
            rework += 1

    def median(values: Any) -> float:
        series = pd.Series(values, dtype="float64")
        return float(series.median()) if len(series) else float("nan")

    rows = [
        ("deployment frequency", count / weeks if weeks else 0.0, "per week",
         "production deployments started in the quarter, divided by its weeks"),
        ("deployments", float(count), "deployments",
         "changes whose production deployment started in the quarter"),
        ("change lead time", median(lead), "hours (median)",
         "from the change's submission to the start of its production deployment"),
        ("change fail rate", len(failed) / count if count else float("nan"), "ratio",
         "failed deployments over deployments; a failure is a rollback, a failed deploy "
         "or an incident caused by the change"),
        ("failed-deployment recovery time", median(recovery), "minutes (median)",
         "from the failed verification (or deploy) to the successful rollback"),
        ("deployment rework rate", rework / count if count else float("nan"), "ratio",
         "emergency deployments caused by incidents (P1) over deployments"),
    ]
    return pd.DataFrame(rows, columns=["metric", "value", "unit", "definition"])
