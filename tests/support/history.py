"""A change's history written into a real change log, event by event, as the flows would."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.models import ChangeRequest, RollbackPlan
from integrations.changelog_sql import SqlChangeLog

ALL_GATES = ["code_review", "automated_tests", "security_scan", "staging_validation",
             "rollback_plan", "approval"]


def submission(cid: str, category: str = "normal", author: str = "alice",
               **change: Any) -> dict[str, Any]:
    """A `change_submitted` payload for a valid change `cid` (with `change` overrides)."""
    values: dict[str, Any] = {
        "id": cid, "summary": f"{cid} summary", "description": f"{cid} does a thing",
        "scope": "sample", "risk_assessment": "low", "testing_plan": "tests",
        "rollback_plan": RollbackPlan(trigger="t", steps="s", owner=author, verification="v",
                                      time_estimate_minutes=10),
        "category": category, "service": "sample", "version": "1.0.1", "author": author}
    request = ChangeRequest(**(values | change))
    return {"summary": request.summary, "description": request.description,
            "category": category, "service": request.service, "version": request.version,
            "author": author, "change": request.model_dump(mode="json")}


class History:
    """Writes one change's events with explicit times, as the flows would have."""

    def __init__(self, log: SqlChangeLog, cid: str, category: str, at: datetime,
                 author: str = "alice", **change: Any) -> None:
        self.log, self.cid, self.at = log, cid, at
        self.add("change_submitted", author, **submission(cid, category, author, **change))

    def add(self, type_: str, actor: str = "changeflow", at: datetime | None = None,
            **payload: Any) -> History:
        self.at = at or self.at + timedelta(minutes=5)
        self.log.append(self.cid, type_, actor, payload, self.at)
        return self

    def approve(self, role: str, person: str, purpose: str = "review", **extra: Any) -> History:
        return self.add("approval_recorded", extra.pop("actor", person), role=role,
                        person_id=person, decision="approve", purpose=purpose,
                        channel=extra.pop("channel", "prefect-ui"), **extra)

    def stage(self) -> History:
        return self.add("staging_started", version="1.0.1").add("staging_passed", results=[])

    def gates(self, statuses: dict[str, str] | None = None,
              names: list[str] | None = None,
              sources: dict[str, str] | None = None) -> History:
        statuses, sources = statuses or {}, sources or {}
        return self.add("gates_passed", gates=[
            {"gate": g, "status": statuses.get(g, "passed"), "reason": "r",
             "source": sources.get(g, "changeflow")} for g in names or ALL_GATES])

    def deploy(self, at: datetime, notified_at: datetime, ok: bool = True) -> History:
        self.add("deployment_scheduled", slot=at.isoformat(), notified=["alice"],
                 notified_at=notified_at.isoformat(), at=notified_at)
        self.add("deployment_started", "alice", at=at, version="1.0.1",
                 previous_version="1.0.0")
        self.add("deployment_succeeded", version="1.0.1")
        if ok:
            self.add("verification_passed", checks=[])
        return self

    def roll_back(self, minutes: float, incident: bool) -> History:
        self.add("verification_failed", checks=[])
        self.add("rollback_started", to_version="1.0.0", reason="verification failed")
        self.add("rollback_succeeded", at=self.at + timedelta(minutes=minutes),
                 to_version="1.0.0", minutes=minutes, estimate_minutes=10)
        if incident:
            self.add("incident_opened", incident_id=f"INC-{self.cid}-1", priority=3,
                     summary="rolled back", review_due=(self.at + timedelta(days=7)).isoformat())
        return self

    def close(self, outcome: str) -> History:
        return self.add("change_closed", outcome=outcome)
