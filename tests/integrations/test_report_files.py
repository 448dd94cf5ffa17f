"""The quarterly report's renderings on disk: HTML, CSV, XLSX, chain.json, evidence."""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import pandas as pd
import pytest

from reporting.evidence import (
    change_page,
    sample_changes,
    write_evidence_pack,
    write_sample,
)
from reporting.files import replace_atomically, write_report
from reporting.html import render_html
from reporting.model import SECTIONS, Quarter, QuarterlyReport

QUARTER = Quarter(2026, 3)
XSS = "<script>alert(1)</script>"
HEAD_HASH = "9f2c1e0b7a4d4b8f9d3e6a1c2b5f8e7d6c4a3b2918f7e6d5c4b3a29180f7e6d5"
FINDINGS_NOTE = "No prohibited-practice audit has run for this quarter."


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def instants(*texts: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(texts), utc=True))


def make_report(*, empty: bool = False, chain_ok: bool = True) -> QuarterlyReport:
    """Three changes (a standard, a rolled-back normal, an emergency), every column filled.

    `empty=True` keeps every table's columns and dtypes but no rows.
    """
    changes = pd.DataFrame({
        "change_id": ["CHG-101", "CHG-102", "CHG-103"],
        "category": ["standard", "normal", "emergency"],
        "reclassified_from": [None, None, "normal"],
        "service": ["payments", "payments", "ledger"],
        "version": ["1.4.0", "1.5.0", "2.0.1"],
        "summary": ["Rotate TLS certificates", XSS, "Hotfix: ledger rounding & totals"],
        "author": ["alice", "bob", "carol"],
        "approvers": [["dave"], ["dave", "erin"], ["frank"]],
        "submitted_at": instants("2026-07-01T09:00", "2026-08-03T10:15", "2026-09-10T02:00"),
        "deployed_at": instants("2026-07-02T21:00", "2026-08-05T21:30", "2026-09-10T02:40"),
        "month": ["2026-07", "2026-08", "2026-09"],
        "outcome": ["succeeded", "rolled_back", "succeeded"],
        "incidents": ["", "INC-7", "INC-9"],
    })
    by_category_outcome = pd.crosstab(changes["category"], changes["outcome"])
    by_service = pd.DataFrame({"service": ["ledger", "payments"], "changes": [1, 2],
                               "succeeded": [1, 1], "rolled_back": [0, 1], "failed": [0, 0]})
    by_month = pd.crosstab(changes["month"], changes["category"]).reset_index()
    controls = pd.DataFrame({
        "control": ["record complete", "approvals obtained", "notice given"],
        "requirement": ["section 7 fields", "section 1 approvals", "24 h notice"],
        "applicable": [3, 3, 0], "passed": [3, 2, 0], "rate": [1.0, 2 / 3, float("nan")],
        "exceptions": [0, 1, 0]})
    exceptions = pd.DataFrame({"control": ["approvals obtained"], "change_id": ["CHG-102"],
                               "detail": ["missing security approval"]})
    emergencies = pd.DataFrame({
        "change_id": ["CHG-103"], "summary": ["Hotfix: ledger rounding & totals"],
        "trigger": ["p1_incident"], "incident_ref": ["INC-9"],
        "deployed_at": instants("2026-09-10T02:40"), "verbal_approver": ["grace"],
        "approver_role": ["engineering_lead"], "channel": ["phone"],
        "recorded_by": ["carol"], "fallback_reason": ["ciso unreachable"],
        "confirmation": ["met by grace"], "documentation": ["met by carol"],
        "post_hoc_review": ["open (due 2026-09-17 02:40 UTC)"], "ciso_signoff": ["open"],
        "open_items": ["post_hoc_review, ciso_signoff"]})
    rollbacks = pd.DataFrame({
        "change_id": ["CHG-102"], "rolled_back_at": instants("2026-08-05T21:52"),
        "rollback_minutes": [22.5], "estimate_minutes": [15.0], "within_estimate": [False],
        "incident": ["INC-7"], "priority": [2], "review_due": instants("2026-08-12T21:52"),
        "review_status": ["done"]})
    findings = pd.DataFrame(columns=["practice", "change_id", "detail", "found_at"])
    metrics = pd.DataFrame({
        "metric": ["deployments", "change fail rate", "change lead time"],
        "value": [3.0, 1 / 3, 30.5], "unit": ["deployments", "ratio", "hours (median)"],
        "definition": ["changes deployed in the quarter", "failed over deployed",
                       "submission to deployment"]})
    chain = {"ok": chain_ok, "checked": 42, "head_seq": 42, "head_hash": HEAD_HASH,
             "problem": None if chain_ok else "event 17: hash does not match its content",
             "quarter_events": 30}
    inventory = {"by_category_outcome": by_category_outcome, "by_service": by_service,
                 "by_month": by_month}
    if empty:
        changes, controls, exceptions, emergencies, rollbacks, metrics = (
            f.iloc[:0] for f in (changes, controls, exceptions, emergencies, rollbacks,
                                 metrics))
        inventory = {k: v.iloc[:0] for k, v in inventory.items()}
    return QuarterlyReport(
        quarter=QUARTER, generated_at=datetime(2026, 10, 1, 6, 0, tzinfo=UTC),
        policy="SOC2-CHG-001 v1.0", changes=changes, inventory=inventory, controls=controls,
        exceptions=exceptions, emergencies=emergencies, rollbacks=rollbacks,
        findings=findings, metrics=metrics, chain=chain, findings_note=FINDINGS_NOTE,
        notes=["Illustrative data."])


def make_evidence(change_id: str, summary: str = "Rotate TLS certificates") -> dict[str, Any]:
    at = "2026-07-02T21:00:00+00:00"
    return {
        "record": {"change_id": change_id, "category": "normal", "summary": summary,
                   "description": f"Line one\n{XSS}", "author": "alice",
                   "approvers": ["dave", "erin"], "deployed_at": at, "outcome": "succeeded",
                   "incidents": [], "service": "payments", "version": "1.4.0"},
        "events": [{"seq": 7, "at": datetime(2026, 7, 2, 21, 0, tzinfo=UTC),
                    "type": "deployment_started", "actor": "changeflow",
                    "payload": {"version": "1.4.0", "note": XSS}, "hash": f"{change_id}-h7"}],
        "approvals": [{"role": "engineering_lead", "person_id": "dave", "decision": "approve",
                       "at": at, "channel": "ui", "comment": XSS, "recorded_by": None,
                       "fallback_reason": None}],
        "gates": [{"gate": "code_review", "status": "passed", "reason": ""}],
        "deployments": [{"at": at, "type": "deployment_started", "actor": "changeflow"}],
        "verifications": [], "incidents": []}


def expected_csv(table: pd.DataFrame) -> pd.DataFrame:
    """What a table should read back as from its CSV.

    The index becomes a column, lists are joined with "; ", and an empty text reads back
    as missing (CSV cannot tell them apart).
    """
    flat = table.reset_index() if table.index.name is not None else table.copy()
    for name in flat.columns:
        if any(isinstance(v, list) for v in flat[name]):
            flat[name] = flat[name].map("; ".join)
        if any(v == "" for v in flat[name] if isinstance(v, str)):
            flat[name] = flat[name].map(lambda v: None if v == "" else v)
    return flat


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    report = make_report()
    written = write_report(report, tmp_path / "out")
    names = ["report.html", *(f"{n}.csv" for n in report.tables()), "report.xlsx",
             "chain.json"]
    assert list(written) == names
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)
    assert all(written[n] == tmp_path / "out" / n for n in names)


@pytest.mark.parametrize("empty", [False, True], ids=["three-changes", "empty"])
def test_csvs_read_back_equal_to_the_tables(tmp_path: Path, empty: bool) -> None:
    report = make_report(empty=empty)
    written = write_report(report, tmp_path)
    for name, table in report.tables().items():
        expected = expected_csv(table)
        back = pd.read_csv(written[f"{name}.csv"], encoding="utf-8")
        assert list(back.columns) == [str(c) for c in expected.columns], name
        for column in expected.columns:
            if isinstance(expected[column].dtype, pd.DatetimeTZDtype):
                back[column] = pd.to_datetime(back[column], utc=True, format="ISO8601")
        expected.columns = pd.Index([str(c) for c in expected.columns])
        if not empty:
            pd.testing.assert_frame_equal(back, expected, check_dtype=False,
                                          check_column_type=False, check_index_type=False)
        else:
            assert back.empty


def test_csv_instants_are_iso_8601_utc(tmp_path: Path) -> None:
    written = write_report(make_report(), tmp_path)
    text = written["changes.csv"].read_text(encoding="utf-8")
    assert "2026-08-05T21:30:00+00:00" in text
    assert "dave; erin" in text


@pytest.mark.parametrize("empty", [False, True], ids=["three-changes", "empty"])
def test_xlsx_has_one_sheet_per_table_with_headers(tmp_path: Path, empty: bool) -> None:
    report = make_report(empty=empty)
    written = write_report(report, tmp_path)
    book = openpyxl.load_workbook(written["report.xlsx"])
    try:
        tables = report.tables()
        assert book.sheetnames == list(tables)
        for name, table in tables.items():
            flat = expected_csv(table)
            headers = [f"{c} (UTC)" if isinstance(flat[c].dtype, pd.DatetimeTZDtype) else str(c)
                       for c in flat.columns]
            row = next(book[name].iter_rows(min_row=1, max_row=1, values_only=True), ())
            assert list(row) == headers, name
            assert book[name].max_row == (1 if empty else len(table) + 1), name
        if not empty:
            changes = book["changes"]
            header = [c.value for c in changes[1]]
            deployed = changes.cell(row=3, column=header.index("deployed_at (UTC)") + 1).value
            assert deployed == datetime(2026, 8, 5, 21, 30)
            assert changes.cell(row=3, column=header.index("approvers") + 1).value == \
                "dave; erin"
    finally:
        book.close()


def test_chain_json_holds_the_head_hash(tmp_path: Path) -> None:
    written = write_report(make_report(), tmp_path)
    chain = json.loads(written["chain.json"].read_text(encoding="utf-8"))
    assert chain["head_hash"] == HEAD_HASH
    assert chain["ok"] is True and chain["head_seq"] == 42
    assert chain["report"]["quarter"] == "2026Q3"


def test_html_escapes_ticket_text_and_is_self_contained() -> None:
    html = render_html(make_report())
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_html_has_the_sections_in_order_with_charts_and_figures() -> None:
    report = make_report()
    html = render_html(report)
    assert "<title>Change management report 2026Q3</title>" in html
    assert re.findall(r"<h2>(.*?)</h2>", html) == list(SECTIONS)
    assert "SOC2-CHG-001 v1.0" in html and HEAD_HASH in html
    assert "2026-10-01 06:00 UTC" in html
    assert html.count("<svg") == 3
    assert "<td class=\"num\">66.7%</td>" in html
    assert "33.3%</td><td>failed over deployed</td>" in html
    assert "2026-08-05 21:30 UTC" in html
    assert FINDINGS_NOTE in html
    before = {name: table.copy() for name, table in report.tables().items()}
    assert render_html(report) == html, "rendering is deterministic"
    for name, table in report.tables().items():
        pd.testing.assert_frame_equal(table, before[name])


def test_empty_quarter_has_every_heading_and_says_so() -> None:
    html = render_html(make_report(empty=True))
    assert re.findall(r"<h2>(.*?)</h2>", html) == list(SECTIONS)
    assert "No changes in 2026Q3." in html
    assert "<svg" not in html
    assert FINDINGS_NOTE in html


def test_tables_without_columns_still_render() -> None:
    bare = pd.DataFrame()
    report = QuarterlyReport(
        quarter=QUARTER, generated_at=datetime(2026, 10, 1, tzinfo=UTC), policy="p",
        changes=bare, inventory={}, controls=bare, exceptions=bare, emergencies=bare,
        rollbacks=bare, findings=bare, metrics=bare, chain={})
    html = render_html(report)
    assert re.findall(r"<h2>(.*?)</h2>", html) == list(SECTIONS)
    assert "No changes in 2026Q3." in html


def test_broken_chain_is_shown_prominently() -> None:
    html = render_html(make_report(chain_ok=False))
    assert html.count("event 17: hash does not match its content") >= 2
    assert "role=\"alert\"" in html and "BROKEN" in html


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")

    def half_then_fail(path: Path) -> None:
        path.write_text("<html>half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(target, half_then_fail)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_sample_is_reproducible_order_independent_and_seeded() -> None:
    ids = [f"CHG-{n}" for n in range(1, 51)]
    first = sample_changes(ids, 5, "2026Q3")
    assert first == sample_changes(list(reversed(ids)), 5, "2026Q3")
    assert first == sample_changes(ids + ids[:3], 5, "2026Q3")
    assert first == sorted(first) and len(set(first)) == 5 and set(first) <= set(ids)
    assert sample_changes(ids, 5, "2026Q3-auditor") != first
    assert sample_changes(ids[::-1][:3], 10, "x") == ["CHG-48", "CHG-49", "CHG-50"]
    with pytest.raises(ValueError, match="negative"):
        sample_changes(ids, -1, "x")


def test_evidence_pack_members_parse(tmp_path: Path) -> None:
    report = make_report()
    evidence = {cid: make_evidence(cid) for cid in ("CHG-103", "CHG-101", "CHG-102")}
    out = write_evidence_pack(report, evidence, tmp_path / "evidence-2026Q3.zip")
    with zipfile.ZipFile(out) as pack:
        assert pack.namelist() == ["README.txt", "report.html", "chain.json",
                                   "changes/CHG-101.json", "changes/CHG-102.json",
                                   "changes/CHG-103.json"]
        for cid in evidence:
            parsed = json.loads(pack.read(f"changes/{cid}.json"))
            assert parsed["record"]["change_id"] == cid
            assert parsed["events"][0]["at"] == "2026-07-02T21:00:00+00:00"
        assert json.loads(pack.read("chain.json"))["head_hash"] == HEAD_HASH
        readme = pack.read("README.txt").decode("utf-8")
        assert "changeflow log verify" in readme and HEAD_HASH in readme
        assert XSS not in pack.read("report.html").decode("utf-8")
    again = write_evidence_pack(report, dict(reversed(evidence.items())), tmp_path / "b.zip")
    assert again.read_bytes() == out.read_bytes()


def test_change_page_has_every_section_escaped() -> None:
    page = change_page(make_evidence("CHG-101", summary=XSS))
    assert XSS not in page and "<script" not in page.lower()
    for section in ("Record", "Approvals", "Gates", "Deployment and verification",
                    "Incidents", "Event trail"):
        assert f"<h2>{section}</h2>" in page
    for field in ("Change ID", "Description", "Author", "Approvers", "Deployment date",
                  "Outcome", "Incidents"):
        assert f"<dt>{field}</dt>" in page
    assert "CHG-101-h7" in page and "dave, erin" in page


def test_write_sample_writes_pages_and_an_index(tmp_path: Path) -> None:
    evidence = {cid: make_evidence(cid) for cid in ("CHG-1", "CHG-2", "CHG-3")}
    sampled = sample_changes(list(evidence), 2, "2026Q3")
    paths = write_sample(evidence, sampled, tmp_path / "sample", seed="2026Q3",
                         population=len(evidence))
    assert [p.name for p in paths] == [f"{cid}.html" for cid in sampled] + ["index.html"]
    index = paths[-1].read_text(encoding="utf-8")
    assert "2026Q3" in index and "3 changes" in index
    assert all(f"href=\"{cid}.html\"" in index for cid in sampled)
    with pytest.raises(KeyError, match="CHG-9"):
        write_sample(evidence, ["CHG-9"], tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_a_large_quarter_caps_long_tables_and_draws_a_histogram() -> None:
    report = make_report()
    one = report.rollbacks.iloc[[0]]
    report.rollbacks = pd.concat([one] * 60, ignore_index=True)
    report.changes = pd.concat([report.changes.iloc[[0]]] * 1200, ignore_index=True)
    html = render_html(report)
    assert "The first 1,000 of 1,200 rows; all of them are in changes.csv" in html
    assert "minutes the rollback took" in html  # the histogram's axis, not 60 bars
    assert html.count("<svg") == 3


FORMULAS = ['=HYPERLINK("https://evil.example","open me")', "+1+1", "-2+3", "@SUM(A1)",
            "\tcmd", "\rcmd"]


def test_ticket_text_that_looks_like_a_formula_stays_text(tmp_path: Path) -> None:
    report = make_report()
    changes = report.changes.copy()
    changes["summary"] = [FORMULAS[0], FORMULAS[1], "a plain summary"]
    changes["author"] = [FORMULAS[2], FORMULAS[3], FORMULAS[4]]
    written = write_report(dataclasses.replace(report, changes=changes), tmp_path)
    back = pd.read_csv(written["changes.csv"], encoding="utf-8", keep_default_na=False)
    assert list(back["summary"]) == ["'" + FORMULAS[0], "'+1+1", "a plain summary"]
    assert list(back["author"]) == ["'-2+3", "'@SUM(A1)", "'\tcmd"]
    book = openpyxl.load_workbook(written["report.xlsx"])
    try:
        sheet = book["changes"]
        header = [c.value for c in sheet[1]]
        cells = [sheet.cell(row=r, column=header.index("summary") + 1) for r in (2, 3)]
        assert [c.value for c in cells] == FORMULAS[:2]
        assert all(c.data_type == "s" and c.hyperlink is None for c in cells)
    finally:
        book.close()
