"""The `changeflow` console script, run as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import zipfile
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest

from changeflow.approver import mail_messages, mailed_codes
from config.loader import load_config
from config.settings import PROJECT_ROOT
from domain.models import Category, Roster
from integrations.chain_keys import ChainKeys
from integrations.changelog_sql import SqlChangeLog
from tests.support.history import submission
from tests.support.keys import TEST_KEY_TEXT, TEST_KEYS

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CHANGEFLOW = Path(sys.executable).with_name("changeflow")


OBLIGATIONS = ("approval_confirmation", "documentation", "post_hoc_review", "ciso_signoff")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CHANGEFLOW_")}
    full.update(env or {})
    return subprocess.run([str(CHANGEFLOW), *args], capture_output=True, text=True,
                          env=full, timeout=120, cwd=PROJECT_ROOT)


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    return {"CHANGEFLOW_CONFIG_DIR": str(config), "CHANGEFLOW_VAR_DIR": str(tmp_path / "var"),
            "CHANGEFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}",
            "CHANGEFLOW_CHAIN_KEY": TEST_KEY_TEXT}


def test_check_config_accepts_the_shipped_files(workspace: dict[str, str]) -> None:
    done = run("check-config", env=workspace)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: SOC2-CHG-001 v1.0, 8 people, 1 service(s)")
    assert "warning" not in done.stdout


def test_check_config_names_who_no_personal_channel_reaches(workspace: dict[str, str]) -> None:
    roster = Path(workspace["CHANGEFLOW_CONFIG_DIR"]) / "roster.yaml"
    roster.write_text(roster.read_text().replace("    slack_id: U04QUINN04\n", ""))
    done = run("check-config", env={**workspace, "CHANGEFLOW_NOTIFIERS": "slack"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "warning: roster.yaml: quinn (qa) has no personal channel among "
        "CHANGEFLOW_NOTIFIERS=slack: they cannot be sent a one-time code, so they cannot "
        "decide in the Prefect form (give them a slack_id, or add a notifier)"]


def test_check_config_prints_every_problem(workspace: dict[str, str]) -> None:
    config = Path(workspace["CHANGEFLOW_CONFIG_DIR"])
    policy = config / "policy.yaml"
    policy.write_text(policy.read_text().replace("      - role: ciso\n", "      - role: cso\n", 1)
                      .replace("notice_hours: 24", "notice_hours: -1"))
    roster = config / "roster.yaml"
    roster.write_text(roster.read_text().replace("roles: [qa]", "roles: [qa, tester]"))
    done = run("check-config", env=workspace)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "policy.yaml: schedule.notice_hours: Input should be greater than or equal to 0" \
        in lines
    assert any(line.startswith("roster.yaml: people[3].roles: unknown role 'tester'")
               for line in lines)
    assert "problem(s)" in done.stderr


def test_check_config_names_the_unknown_role(workspace: dict[str, str]) -> None:
    policy = Path(workspace["CHANGEFLOW_CONFIG_DIR"]) / "policy.yaml"
    text = policy.read_text()
    major = text.index("  major:")
    text = text[:major] + text[major:].replace("- role: ciso", "- role: cso", 1)
    policy.write_text(text)
    done = run("check-config", env=workspace)
    assert done.returncode == 1
    assert done.stdout.startswith(
        "policy.yaml: categories.major.approvals[1]: unknown role 'cso'")


def test_bad_setting_is_named(workspace: dict[str, str]) -> None:
    done = run("changes", env={**workspace, "CHANGEFLOW_TICKETS": "carrier-pigeon"})
    assert done.returncode == 2
    assert "CHANGEFLOW_TICKETS: Input should be 'local'" in done.stderr


def test_unreachable_database_is_named_without_the_url(workspace: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://someone:hunter2-witness@127.0.0.1:{port}/nothing"
    done = run("log", "verify", env={**workspace, "CHANGEFLOW_DATABASE_URL": url})
    assert done.returncode == 2
    assert "cannot open the change log at CHANGEFLOW_DATABASE_URL" in done.stderr
    assert "hunter2-witness" not in done.stdout + done.stderr


def test_prepare_server_needs_a_server_to_prepare(workspace: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGEFLOW_", "PREFECT_"))}
    done = subprocess.run([str(CHANGEFLOW), "prepare-server"], capture_output=True, text=True,
                          env={**env, **workspace}, timeout=120, cwd=PROJECT_ROOT)
    assert done.returncode == 2
    assert "PREFECT_API_URL is not set" in done.stderr


def _seed(url: str) -> SqlChangeLog:
    log = SqlChangeLog(url, keys=TEST_KEYS)
    log.append("CHG-1", "change_submitted", "alice",
               submission("CHG-1", summary="Paginate orders"), NOW)
    log.append("CHG-1", "note", "alice", {"text": "hello"}, NOW)
    log.append("CHG-2", "change_submitted", "carol",
               submission("CHG-2", "emergency", "carol", summary="Hotfix",
                          emergency_trigger="p1_incident", incident_ref="INC-1"), NOW)
    return log


def test_log_verify_reports_ok_then_names_the_tampered_event(workspace: dict[str, str]) -> None:
    log = _seed(workspace["CHANGEFLOW_DATABASE_URL"])
    done = run("log", "verify", env=workspace)
    assert done.returncode == 0
    assert done.stdout.startswith("chain ok: 3 event(s) verified (hash, MAC under key test-1, "
                                  "time), head event 3")
    with log.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER change_events_no_update")
        conn.exec_driver_sql("UPDATE change_events SET actor = 'mallory' WHERE seq = 2")
    done = run("log", "verify", env=workspace)
    assert done.returncode == 1
    assert "event 2 (CHG-1, note): its content does not match its hash" in done.stdout


def test_the_report_of_a_tampered_log_says_the_chain_is_broken(
        workspace: dict[str, str], tmp_path: Path) -> None:
    log = _seed(workspace["CHANGEFLOW_DATABASE_URL"])
    with log.engine.begin() as conn:  # an event removed, as someone with the database could
        conn.exec_driver_sql("DROP TRIGGER change_events_retention")
        conn.exec_driver_sql("DELETE FROM change_events WHERE seq = 2")
    done = run("report", "--quarter", "2026Q4", "--out", str(tmp_path / "out"), env=workspace)
    assert done.returncode == 1, done.stderr
    assert "chain BROKEN" in done.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert "BROKEN" in html and 'role="alert"' in html


def test_log_export_prints_the_events_as_json(workspace: dict[str, str]) -> None:
    _seed(workspace["CHANGEFLOW_DATABASE_URL"])
    done = run("log", "export", "CHG-1", env=workspace)
    assert done.returncode == 0
    events = json.loads(done.stdout)
    assert [(e["seq"], e["type"], e["actor"]) for e in events] == [
        (1, "change_submitted", "alice"), (2, "note", "alice")]
    assert events[1]["prev_hash"] == events[0]["hash"]
    missing = run("log", "export", "CHG-404", env=workspace)
    assert missing.returncode == 2 and "no change 'CHG-404'" in missing.stderr


def test_changes_lists_changes_as_table_and_json(workspace: dict[str, str]) -> None:
    _seed(workspace["CHANGEFLOW_DATABASE_URL"])
    table = run("changes", env=workspace)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == [
        "CHANGE", "CATEGORY", "STATE", "OUTCOME", "INCIDENTS", "SUMMARY"]
    assert table.stdout.splitlines()[1].split()[:4] == ["CHG-1", "normal", "submitted", "-"]
    records = json.loads(run("changes", "--json", env=workspace).stdout)
    assert [(r["change_id"], r["category"]) for r in records] == [
        ("CHG-1", "normal"), ("CHG-2", "emergency")]


def test_purge_inside_retention_is_refused(workspace: dict[str, str]) -> None:
    _seed(workspace["CHANGEFLOW_DATABASE_URL"])
    done = run("log", "purge", "--before", "2026-01-01", "--actor", "alice", env=workspace)
    assert done.returncode == 2
    assert "younger than 3 years" in done.stderr


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:  # the process ended meanwhile
        return ""


WITNESS = "witness-7f3c9a1e5d"
"""Set as every secret of the demo run; it must not appear anywhere the run wrote."""
SECRETS = ("CHANGEFLOW_JIRA_TOKEN", "CHANGEFLOW_GITHUB_TOKEN", "CHANGEFLOW_DATABASE_PASSWORD")


def files_holding(root: Path, needle: bytes) -> list[Path]:
    """Every file under `root` (databases, logs, artifacts, reports) whose bytes hold `needle`."""
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


def each_approver_was_mailed_their_own_code_once(maildir: Path) -> None:
    """Every code mail went to one person, at their roster address; one per request each."""
    roster = load_config(PROJECT_ROOT / "config").roster
    codes = [m for m in mail_messages(maildir) if m["X-Changeflow-Kind"] == "approval-code"]
    for mail in codes:
        person = roster.people[mailed_codes_to(mail, roster)]
        assert mail["X-RcptTo"] == person.email  # the envelope: that address alone
    notices = mailed_codes(maildir, roster)
    assert len(notices) == len(codes) and len({n.code for n in notices}) == len(notices)
    asked = Counter((n.run_id, n.role, n.purpose, n.to) for n in notices)
    assert set(asked.values()) == {1}, asked


def mailed_codes_to(mail: EmailMessage, roster: Roster) -> str:
    address = parseaddr(str(mail["To"]))[1]
    [person] = [p.id for p in roster.people.values() if p.email == address]
    return person


def places_holding_codes(root: Path) -> list[str]:
    """Where, outside the mail it was sent in, any one-time code the demo sent is kept.

    Databases are read through SQL (every row of every table, Prefect's run inputs, logs
    and events included); every other file (the change log's exports, the evidence pack,
    reports, Prefect's and the service's logs) byte by byte.
    """
    maildir = root / "mail"
    codes = {n.code for n in mailed_codes(maildir, load_config(PROJECT_ROOT / "config").roster)}
    forms = codes | {c.replace("-", "") for c in codes}
    assert len(codes) >= 10  # every decision of the demo sent codes
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or maildir in path.parents or path.suffix in (".db-wal",
                                                                            ".db-shm"):
            continue
        if path.suffix == ".db":
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                text = "\n".join(db.iterdump())
            found += [f"{path}: {c}" for c in forms if c in text]
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as pack:
                found += [f"{path}!{n}: {c}" for n in pack.namelist()
                          for c in forms if c.encode() in pack.read(n)]
        else:
            data = path.read_bytes()
            found += [f"{path}: {c}" for c in forms if c.encode() in data]
    return found


def test_demo_runs_end_to_end_and_leaves_no_process() -> None:
    done = run("demo", env={name: WITNESS for name in SECRETS})
    assert done.returncode == 0, done.stdout + done.stderr
    assert WITNESS not in done.stdout + done.stderr
    written = PROJECT_ROOT / "var" / "demo"
    assert files_holding(written, WITNESS.encode()) == []
    assert len(files_holding(written, b"CHG-101")) >= 3  # the scan does read what was written
    assert places_holding_codes(written) == []
    each_approver_was_mailed_their_own_code_once(written / "mail")
    out = done.stdout
    assert "CHG-104  refused at submit: rollback_plan: missing" in out
    assert "CHG-102  approved as security (review) by sam, code checked" in out
    assert "CHG-103  verification FAILED: health, error-rate" in out
    assert "CHG-103  incident INC-CHG-103-1 opened as P3" in out
    assert "CHG-105  fits standard procedure certificate_renewal" in out
    assert "CHG-105  approved as engineer (self-approval) by alice, code checked" in out
    assert ("CHG-201  approved verbally by carol as ciso (phone), recorded by erin with their "
            "code") in out
    assert "CHG-201  gate code_review bypassed (emergency, recorded)" in out
    for kind, by in (("approval_confirmation", "carol"), ("documentation", "alice"),
                     ("post_hoc_review", "erin"), ("ciso_signoff", "carol")):
        assert f"CHG-201  {kind} done by {by}, code checked" in out
    escalations = [line.split()[1:] for line in out.splitlines() if "ESCALATED" in line]
    assert escalations == [["ESCALATED:", "approval_confirmation", "overdue", "->", "carol"],
                           ["ESCALATED:", "documentation", "overdue", "->", "bob,", "carol"]]
    assert "chain ok:" in out
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines()
            if line.startswith("  CHG-") and ("closed" in line or "needs_information" in line)
            and len(line.split()) > 4 and line.split()[1] in set(Category)}
    assert rows == {"CHG-104": ["normal", "needs_information", "-"],
                    "CHG-101": ["normal", "closed", "succeeded"],
                    "CHG-102": ["major", "closed", "succeeded"],
                    "CHG-103": ["normal", "closed", "rolled_back"],
                    "CHG-105": ["standard", "closed", "succeeded"],
                    "CHG-201": ["emergency", "closed", "succeeded"],
                    "CHG-202": ["emergency", "closed", "succeeded"]}
    still_open = [(row[0], row[1], row[3]) for row in map(str.split, out.splitlines())
                  if len(row) == 6 and row[1] in OBLIGATIONS]
    assert still_open == [("CHG-202", kind, "open") for kind in OBLIGATIONS]
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):  # the service is gone
        s.connect(("127.0.0.1", 18765))
    leftovers = [p for p in Path("/proc").glob("[0-9]*/cmdline") if "var/demo" in _read(p)]
    assert leftovers == [], "the demo left processes behind"
    demo_env = {"CHANGEFLOW_VAR_DIR": str(PROJECT_ROOT / "var/demo/var"),
                "CHANGEFLOW_CONFIG_DIR": str(PROJECT_ROOT / "var/demo/config")}
    shown = run("changes", env=demo_env)
    assert "INC-CHG-103-1" in shown.stdout
    assert "undocumented_change: 1.1.1 was deployed to production" in out
    assert "run again: 1 finding(s), 0 new" in out
    quarter = [line for line in out.splitlines() if line.startswith("8. Quarterly report")]
    assert quarter and "7 changes" in quarter[0] and "1 rollback(s)" in quarter[0]
    assert "1 prohibited-practice finding(s)" in quarter[0]
    name = quarter[0].split()[3].rstrip(":")
    assert (PROJECT_ROOT / "var/demo/reports" / name / "report.html").is_file()
    pages = [run("evidence", "--quarter", name, "--sample", "3", "--out",
                 str(PROJECT_ROOT / f"var/demo/sample-{n}"), env=demo_env) for n in (1, 2)]
    assert all(p.returncode == 0 for p in pages), pages[0].stderr
    firsts = [sorted(f.name for f in (PROJECT_ROOT / f"var/demo/sample-{n}").iterdir())
              for n in (1, 2)]
    assert firsts[0] == firsts[1] and len(firsts[0]) == 4  # 3 pages and the index, again
    bad = run("report", "--quarter", "2026-13", "--out", "x", env=demo_env)
    assert bad.returncode == 2 and "'2026-13' is not a quarter; write it like 2026Q3" in \
        bad.stderr
    listed = json.loads(run("obligations", "--all", "--json", env=demo_env).stdout)
    assert {(r["change_id"], r["obligation"], r["status"], r["closed_by"]) for r in listed} == {
        *((("CHG-201", k, "met", by)) for k, by in (
            ("approval_confirmation", "carol"), ("documentation", "alice"),
            ("post_hoc_review", "erin"), ("ciso_signoff", "carol"))),
        *(("CHG-202", k, "open", None) for k in OBLIGATIONS)}


def test_a_truncated_tail_is_caught_against_an_anchor_and_an_expected_head(
        workspace: dict[str, str], tmp_path: Path) -> None:
    anchors = tmp_path / "elsewhere" / "anchors.jsonl"
    env = {**workspace, "CHANGEFLOW_ANCHOR_FILE": str(anchors)}
    log = _seed(workspace["CHANGEFLOW_DATABASE_URL"])
    done = run("log", "anchor", env=env)
    assert done.returncode == 0, done.stderr
    assert "anchored head event 3" in done.stdout and "(key test-1)" in done.stdout
    head = f"3:{log.head()[1]}"
    done = run("log", "verify", "--anchors", "--expect", head, env=env)
    assert done.returncode == 0, done.stdout
    assert "anchor(s) held: 1" in done.stdout and "expected head(s) held: 1" in done.stdout
    # Someone with the database drops the last event and sets the head back: the chain
    # on its own still verifies, its anchor does not.
    with log.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER change_events_retention")
        conn.exec_driver_sql("DELETE FROM change_events WHERE seq = 3")
        conn.exec_driver_sql("DELETE FROM changes WHERE change_id = 'CHG-2'")
        prev = conn.exec_driver_sql("SELECT hash, at FROM change_events WHERE seq = 2").one()
        conn.exec_driver_sql(f"UPDATE chain_head SET seq = 2, hash = '{prev.hash}'")
    assert run("log", "verify", env=env).returncode == 0  # truncation alone is invisible
    done = run("log", "verify", "--anchors", env=env)
    assert done.returncode == 1
    assert (f"NOT HELD: anchor 1 in {anchors} (event 3) is no longer held: the chain ends at "
            "event 2") in done.stdout
    done = run("log", "verify", "--expect", head, env=env)
    assert done.returncode == 1 and "NOT HELD: expected head 3:" in done.stdout


def test_a_forged_anchor_line_is_named(workspace: dict[str, str], tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.jsonl"
    env = {**workspace, "CHANGEFLOW_ANCHOR_FILE": str(anchors)}
    _seed(workspace["CHANGEFLOW_DATABASE_URL"])
    assert run("log", "anchor", env=env).returncode == 0
    line = json.loads(anchors.read_text())
    anchors.write_text(json.dumps({**line, "seq": 2}) + "\n")
    done = run("log", "verify", "--anchors", env=env)
    assert done.returncode == 1
    assert f"{anchors} line 1: its signature does not hold" in done.stdout


def test_public_key_and_new_key(workspace: dict[str, str]) -> None:
    done = run("log", "public-key", env=workspace)
    assert done.returncode == 0 and done.stdout.startswith("test-1 ed25519 ")
    done = run("log", "new-key", "prod-2", env=workspace)
    assert done.returncode == 0
    assert ChainKeys.parse(done.stdout, "new-key").current.id == "prod-2"
    assert run("log", "new-key", "bad id", env=workspace).returncode == 2


def test_an_anchor_target_that_fails_is_named_not_a_traceback(
        workspace: dict[str, str], tmp_path: Path, refused_url: str) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used: the authority cannot be reached\n")
    env = {**workspace, "CHANGEFLOW_ANCHOR_FILE": str(tmp_path / "anchors.jsonl"),
           "CHANGEFLOW_ANCHOR_TSA_URL": refused_url, "CHANGEFLOW_ANCHOR_TSA_CA_FILE": str(ca)}
    _seed(workspace["CHANGEFLOW_DATABASE_URL"])
    done = run("log", "anchor", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "not anchored everywhere: timestamp authority" in done.stdout
    assert "is unreachable" in done.stdout and "anchors.jsonl)" in done.stdout
