"""The quarterly report's figures from a change log with known answers (2026Q4, Berlin)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from config.loader import Config, load_config
from config.settings import PROJECT_ROOT
from integrations.changelog_frames import change_frames
from integrations.changelog_sql import SqlChangeLog
from reporting.model import Quarter, QuarterlyReport
from reporting.quarterly import build_report
from tests.support.history import History
from tests.support.keys import TEST_KEYS

BERLIN = ZoneInfo("Europe/Berlin")
Q4 = Quarter(2026, 4)
NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
CONFIG: Config = load_config(PROJECT_ROOT / "config")
def berlin(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


@pytest.fixture
def report(tmp_path: Path) -> Iterator[QuarterlyReport]:
    log = SqlChangeLog(f"sqlite:///{tmp_path / 'log.db'}", keys=TEST_KEYS)
    # Deployed in the quarter before: out of scope.
    History(log, "CHG-0", "normal", berlin(9, 1, 10)).approve("engineering_lead", "erin") \
        .add("approval_granted").stage().approve("qa", "quinn", "staging-sign-off").gates() \
        .deploy(berlin(9, 9, 7), berlin(9, 7, 7)).close("succeeded")
    # A normal change by the book.
    History(log, "CHG-1", "normal", berlin(10, 5, 9)).approve("engineering_lead", "erin") \
        .add("approval_granted").stage().approve("qa", "quinn", "staging-sign-off").gates() \
        .deploy(berlin(10, 7, 7), berlin(10, 5, 10)).close("succeeded")
    # Rolled back, with its incident.
    History(log, "CHG-2", "normal", berlin(10, 12, 9)).approve("engineering_lead", "erin") \
        .add("approval_granted").stage().approve("qa", "quinn", "staging-sign-off").gates() \
        .deploy(berlin(10, 14, 7), berlin(10, 12, 10), ok=False).roll_back(4, incident=True) \
        .close("rolled_back")
    # Rolled back WITHOUT an incident; QA never signed off, yet the gates were recorded
    # with the approval gate failed.
    History(log, "CHG-3", "normal", berlin(10, 19, 9)).approve("engineering_lead", "erin") \
        .add("approval_granted").gates({"approval": "failed"}) \
        .deploy(berlin(10, 21, 7), berlin(10, 19, 10), ok=False).roll_back(12, incident=False) \
        .close("rolled_back")
    # A standard change, self-approved; its CI result was the ticket's claim (a trial).
    History(log, "CHG-4", "standard", berlin(10, 20, 9), standard_procedure="certificate_renewal",
            change_kind="certificate", changed_paths=["certs/a.pem"]) \
        .approve("engineer", "alice", "self-approval").add("approval_granted") \
        .gates(names=["automated_tests", "rollback_plan", "approval"],
               sources={"automated_tests": "ticket"}) \
        .deploy(berlin(10, 22, 19, 30), berlin(10, 20, 10)).close("succeeded")
    # Deployed on a Monday at noon, told two hours before, QA "approved" by a shared account.
    History(log, "CHG-6", "normal", berlin(11, 2, 9), author="bob") \
        .approve("engineering_lead", "erin").add("approval_granted") \
        .stage().approve("qa", "deploybot", "staging-sign-off").gates() \
        .deploy(berlin(11, 2, 12), berlin(11, 2, 10)).close("succeeded")
    # Rejected in review: in the inventory, never in production.
    History(log, "CHG-7", "normal", berlin(11, 10, 9)).add(
        "change_rejected", step="review", reasons=["no"]).close("rejected")
    # Appended last: the change log's times never go back.
    # An emergency the Wednesday before Christmas: reviewed on its 5th business day (5
    # January, over the holidays), signed off a day late.
    emergency = History(log, "CHG-5", "emergency", berlin(12, 23, 14),
                        emergency_trigger="p1_incident", incident_ref="INC-4711")
    emergency.approve("ciso", "carol", "verbal-approval", actor="oscar", channel="verbal",
                      via="phone", recorded_by="oscar")
    for kind, due, owner_role, owners in (
            ("approval_confirmation", berlin(12, 24, 14, 5), "ciso", ["carol"]),):
        emergency.add("obligation_opened", obligation=kind, due=due.isoformat(),
                      owner_role=owner_role, owners=owners)
    emergency.add("approval_granted").gates({"code_review": "bypassed",
                                             "staging_validation": "bypassed"})
    emergency.deploy(berlin(12, 23, 15), berlin(12, 23, 14, 50))
    for kind, due, owner_role, owners in (
            ("documentation", berlin(12, 24, 15), "engineer", ["alice"]),
            ("post_hoc_review", berlin(1, 5, 15, year=2027), "engineering_lead", ["erin"]),
            ("ciso_signoff", berlin(1, 5, 15, year=2027), "ciso", ["carol"])):
        emergency.add("obligation_opened", obligation=kind, due=due.isoformat(),
                      owner_role=owner_role, owners=owners)
    emergency.close("succeeded")
    for kind, person, at in (("approval_confirmation", "carol", berlin(12, 23, 16)),
                             ("documentation", "alice", berlin(12, 24, 10)),
                             ("post_hoc_review", "erin", berlin(1, 5, 14, year=2027)),
                             ("ciso_signoff", "carol", berlin(1, 6, 9, year=2027))):
        emergency.add("obligation_responded", person, at=at, purpose=kind, person_id=person,
                      decision="approve", role="x")
    start, end = Q4.bounds(BERLIN)
    built = build_report(Q4, *change_frames(log, start, end),
                         CONFIG.policy, CONFIG.roster,
                         {"ok": True, "checked": log.count(), "head_seq": log.count(),
                          "head_hash": "h", "problem": None}, NOW)
    log.close()
    yield built


def control(report: QuarterlyReport, name: str) -> dict[str, Any]:
    row = report.controls.set_index("control").loc[name]
    return {"applicable": int(row["applicable"]), "passed": int(row["passed"]),
            "exceptions": sorted(report.exceptions[report.exceptions["control"] == name]
                                 ["change_id"])}


def test_the_scope_and_the_inventory(report: QuarterlyReport) -> None:
    # in order of submission: the emergency came last
    assert list(report.changes["change_id"]) == ["CHG-1", "CHG-2", "CHG-3", "CHG-4", "CHG-6",
                                                 "CHG-7", "CHG-5"]
    counts = report.inventory["by_category_outcome"].set_index("category")
    assert counts.loc["normal"].to_dict() == {"succeeded": 2, "rolled_back": 2, "rejected": 1}
    assert counts.loc["standard", "succeeded"] == 1
    assert counts.loc["emergency", "succeeded"] == 1
    months = report.inventory["by_month"].set_index("month")
    assert months.sum(axis=1).to_dict() == {"2026-10": 4, "2026-11": 2, "2026-12": 1}


@pytest.mark.parametrize(("name", "applicable", "exceptions"), [
    ("record complete", 6, []),
    ("approvals obtained", 6, ["CHG-3", "CHG-6"]),
    ("separation of duties", 6, ["CHG-6"]),
    ("gates passed before production", 6, ["CHG-3"]),
    ("gate evidence from the code host", 6, ["CHG-4"]),
    ("notice given", 5, ["CHG-6"]),
    ("maintenance window", 5, ["CHG-6"]),
    ("rollback documented as incident", 2, ["CHG-3"]),
])
def test_each_control(report: QuarterlyReport, name: str, applicable: int,
                      exceptions: list[str]) -> None:
    found = control(report, name)
    assert found == {"applicable": applicable, "passed": applicable - len(exceptions),
                     "exceptions": exceptions}
    rate = report.controls.set_index("control").loc[name, "rate"]
    assert rate == pytest.approx((applicable - len(exceptions)) / applicable)


@pytest.mark.parametrize(("category", "applicable", "passed"), [
    ("normal", 4, 2), ("standard", 1, 1), ("emergency", 1, 1)])
def test_approvals_per_category(report: QuarterlyReport, category: str, applicable: int,
                                passed: int) -> None:
    row = report.controls.set_index("control").loc[f"approvals obtained ({category})"]
    assert (row["applicable"], row["passed"]) == (applicable, passed)


def test_exceptions_say_why(report: QuarterlyReport) -> None:
    why = {(r["control"], r["change_id"]): r["detail"]
           for r in report.exceptions.to_dict("records")}
    assert why[("separation of duties", "CHG-6")] == (  # the domain's words, as in the flow
        "Deploy Bot (deploybot) is a shared account and cannot approve as 'qa' (every "
        "approval must be attributable to one person)")
    assert why[("rollback documented as incident", "CHG-3")] == "rolled back without an incident"
    assert why[("notice given", "CHG-6")] == "told 2.0 h ahead"
    assert "outside the maintenance windows" in why[("maintenance window", "CHG-6")]
    assert "missing qa" in why[("approvals obtained", "CHG-3")]


def test_the_emergency_section(report: QuarterlyReport) -> None:
    (row,) = report.emergencies.to_dict("records")
    assert (row["change_id"], row["verbal_approver"], row["approver_role"], row["channel"],
            row["recorded_by"], row["trigger"], row["incident_ref"]) == (
        "CHG-5", "carol", "ciso", "phone", "oscar", "p1_incident", "INC-4711")
    assert row["documentation"].startswith("met by alice")
    assert row["post_hoc_review"].startswith("met by erin")  # its 5th business day
    assert row["ciso_signoff"].startswith("late by carol")
    assert row["confirmation"].startswith("met by carol")
    assert row["open_items"] == ""  # late is done, not open


def test_rollbacks_and_incidents(report: QuarterlyReport) -> None:
    rows = report.rollbacks.set_index("change_id")
    assert rows.loc["CHG-2", "incident"] == "INC-CHG-2-1"
    assert rows.loc["CHG-2", "rollback_minutes"] == 4 and rows.loc["CHG-2", "within_estimate"]
    assert not rows.loc["CHG-3", "within_estimate"]  # 12 minutes against 10
    assert rows.loc["CHG-3", "review_status"] == "none: no incident"
    assert rows.loc["CHG-2", "review_status"] == "overdue"  # due in October, none recorded


def test_delivery_metrics(report: QuarterlyReport) -> None:
    metrics = report.metrics.set_index("metric")["value"]
    assert metrics["deployments"] == 6
    assert metrics["change fail rate"] == pytest.approx(2 / 6)
    assert metrics["deployment rework rate"] == pytest.approx(1 / 6)
    assert metrics["failed-deployment recovery time"] == pytest.approx((9 + 17) / 2)
    start, end = Q4.bounds(BERLIN)  # 92 days and the hour clocks went back
    assert metrics["deployment frequency"] == pytest.approx(
        6 / ((end - start).total_seconds() / (7 * 86400)))
    assert report.metrics["definition"].str.len().min() > 20


def test_findings_are_empty_and_say_why(report: QuarterlyReport) -> None:
    assert report.findings.empty and "no prohibited-practice audit" in \
        report.findings_note.lower()


def test_a_quarter_without_changes_is_a_report_saying_so(tmp_path: Path) -> None:
    log = SqlChangeLog(f"sqlite:///{tmp_path / 'log.db'}", keys=TEST_KEYS)
    start, end = Q4.bounds(BERLIN)
    empty = build_report(Q4, *change_frames(log, start, end),
                         CONFIG.policy, CONFIG.roster, {"ok": True, "checked": 0, "head_seq": 0,
                                                        "head_hash": "0" * 64, "problem": None},
                         NOW)
    log.close()
    assert empty.empty and empty.emergencies.empty and empty.rollbacks.empty
    assert set(empty.controls["applicable"]) == {0}
    assert empty.controls["rate"].isna().all()
    assert list(empty.inventory["by_month"]["month"]) == ["2026-10", "2026-11", "2026-12"]
    assert isinstance(empty.metrics, pd.DataFrame) and len(empty.metrics) == 6
