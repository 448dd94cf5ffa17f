"""Gates judged on a local GitHub, and the prohibited-practice audit, end to end.

The stack talks to `tests/fakes/github_server.py` through the real adapter
(`CHANGEFLOW_CODE_HOST=github`). The sample service's repository is example/sample;
branch protection on main requires the check `ci/tests`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from changeflow.approver import CodeNotice, ScriptedApprover, approve_first
from changeflow.sample_service import deploy
from changeflow.stack import Stack
from config.loader import load_config
from flows.change_request import change_request
from flows.practices_audit import practices_audit
from integrations.changelog_frames import change_frames
from integrations.changelog_schema import events_table
from integrations.factory import installed
from integrations.outbox import read_outbox
from reporting.model import Quarter
from reporting.quarterly import build_report
from tasks.common import ChangeStopped
from tests.fakes.github_server import FakeGitHub
from tests.flows.conftest import CHECK, REPO


@pytest.fixture
def stack(github_stack: Stack) -> Stack:
    """Every test here runs on the stack that reads the local GitHub."""
    return github_stack


def edit_ticket(stack: Stack, key: str, **changes: Any) -> None:
    path = stack.settings.resolved_tickets_dir / f"{key}.yaml"
    fields = yaml.safe_load(path.read_text())
    fields.update(changes)
    path.write_text(yaml.safe_dump(fields, sort_keys=False))


def reviewed_pull(github: FakeGitHub, files: tuple[str, ...] = ("src/orders/list.py",),
                  scanned: bool = True, tagged: bool = True) -> tuple[int, str]:
    """A pull request by alice, approved on its head by erin and bob, CI green, scanned,
    its head tagged as CHG-101's version (v1.1.0)."""
    number = github.add_pull(REPO, "alice-m", "Paginate the orders list", files=files)
    head = github.push(REPO, number)
    if tagged:
        github.tag(REPO, "v1.1.0", head)
    github.review(REPO, number, "erin-lead")
    github.review(REPO, number, "bob-n")
    github.add_check_run(REPO, head, CHECK)
    if scanned:
        github.add_analysis(REPO, head, f"refs/pull/{number}/head")
    return number, head


def link(stack: Stack, number: int, **evidence: Any) -> None:
    ticket = yaml.safe_load((stack.settings.resolved_tickets_dir / "CHG-101.yaml").read_text())
    review = {**ticket["evidence"]["code_review"],
              "pull_request": f"https://github.com/{REPO}/pull/{number}"}
    edit_ticket(stack, "CHG-101", evidence={**ticket["evidence"], "code_review": review,
                                            **evidence})


def events(stack: Stack, change_id: str, type_: str) -> list[dict[str, Any]]:
    return [e.payload for e in stack.adapters.change_log.events(change_id) if e.type == type_]


def test_gates_pass_on_the_pull_request_and_what_github_said_is_recorded(
        stack: Stack, github: FakeGitHub, approver: ScriptedApprover) -> None:
    number, head = reviewed_pull(github)
    link(stack, number)
    assert change_request("CHG-101")["outcome"] == "succeeded"
    (read,) = events(stack, "CHG-101", "code_host_read")
    assert (read["pull_request"], read["head_sha"]) == (f"{REPO}#{number}", head)
    assert read["required_checks"] == [CHECK] and read["required_from"] == "branch protection"
    gates = {g["gate"]: g for g in events(stack, "CHG-101", "gates_passed")[0]["gates"]}
    assert f"{REPO}#{number} at {head[:7]}: 2 approval(s) counted (erin, bob)" in \
        gates["code_review"]["reason"]
    assert CHECK in gates["automated_tests"]["reason"]
    assert "code scanning" in gates["security_scan"]["reason"]


def test_an_approval_before_a_later_push_does_not_count(
        stack: Stack, github: FakeGitHub, approver: ScriptedApprover) -> None:
    number, _ = reviewed_pull(github)
    head = github.push(REPO, number)  # after the reviews
    github.add_check_run(REPO, head, CHECK)
    github.add_analysis(REPO, head, f"refs/pull/{number}/head")
    link(stack, number)
    with pytest.raises(ChangeStopped, match="blocked by gates"):
        change_request("CHG-101")
    (blocked,) = events(stack, "CHG-101", "gates_blocked")
    review = next(g for g in blocked["gates"] if g["gate"] == "code_review")
    assert review["status"] == "failed" and "approved an earlier commit" in review["reason"]
    assert not events(stack, "CHG-101", "deployment_started")
    assert "code_review" in stack.adapters.tickets.comments("CHG-101")[-1]


@pytest.mark.parametrize("tagged", ["another commit", "nothing"])
def test_a_version_that_is_not_the_reviewed_commit_is_refused_at_the_gates(
        stack: Stack, github: FakeGitHub, approver: ScriptedApprover, tagged: str) -> None:
    number, head = reviewed_pull(github, tagged=False)
    other = github.add_branch(REPO, "hotfix")
    if tagged == "another commit":
        github.tag(REPO, "v1.1.0", other)
    link(stack, number)
    with pytest.raises(ChangeStopped, match="blocked by gates"):
        change_request("CHG-101")
    (blocked,) = events(stack, "CHG-101", "gates_blocked")
    review = next(g for g in blocked["gates"] if g["gate"] == "code_review")
    assert (review["status"], review["source"]) == ("failed", "code_host")
    expected = (f"version 1.1.0 (v1.1.0) is commit {other[:12]}, not the reviewed pull "
                f"request's final commit {head[:12]}" if tagged == "another commit" else
                f"version 1.1.0 (v1.1.0) is not a tag or commit on {REPO}, so it cannot be "
                f"matched with the reviewed final commit {head[:12]}")
    assert review["reason"].startswith(expected)
    assert not events(stack, "CHG-101", "deployment_started")


def test_paths_in_the_pull_request_ask_for_security_even_if_the_ticket_did_not(
        stack: Stack, github: FakeGitHub, approver: ScriptedApprover) -> None:
    number, _ = reviewed_pull(github, files=("src/orders/list.py", "src/auth/session.py"))
    link(stack, number)
    assert change_request("CHG-101")["outcome"] == "succeeded"
    (submitted,) = events(stack, "CHG-101", "change_submitted")
    assert "src/auth/session.py" in submitted["change"]["changed_paths"]
    roles = {p["role"] for p in events(stack, "CHG-101", "approval_recorded")}
    assert "security" in roles


def test_who_wrote_commits_of_the_pull_request_may_not_approve_the_change(
        stack: Stack, github: FakeGitHub) -> None:
    """The ticket's author is alice; erin (the only lead) pushed a commit to the pull
    request: she is never asked to review it, and her review on GitHub does not count."""
    number = github.add_pull(REPO, "alice-m", "Paginate the orders list",
                             files=("src/orders/list.py",))
    head = github.push(REPO, number, author="erin-lead", committer="web-flow")
    github.review(REPO, number, "erin-lead")
    github.review(REPO, number, "bob-n")
    github.add_check_run(REPO, head, CHECK)
    github.add_analysis(REPO, head, f"refs/pull/{number}/head")
    link(stack, number)
    with pytest.raises(ChangeStopped, match="nobody in the roster may decide as "
                                            "'engineering_lead' for CHG-101"):
        change_request("CHG-101")
    (submitted,) = events(stack, "CHG-101", "change_submitted")
    assert submitted["change"]["contributors"] == ["erin"]
    assert events(stack, "CHG-101", "approval_requested") == []


def test_an_approver_who_pushes_to_the_pull_request_afterwards_no_longer_counts(
        stack: Stack, github: FakeGitHub) -> None:
    """Erin approves the review in changeflow, then pushes a commit: at the gates she is
    one of the change's writers, so her approval does not count and nothing deploys."""
    number, _ = reviewed_pull(github)
    link(stack, number)

    def approve_then_push(notices: list[CodeNotice], attempt: int) -> dict[str, Any] | None:
        form = approve_first(notices, attempt)
        if form is not None and notices[0].role == "engineering_lead":
            head = github.push(REPO, number, author="erin-lead", committer="erin-lead")
            github.tag(REPO, "v1.1.0", head)
        return form

    with ScriptedApprover(stack.outbox, approve_then_push).start(interval=0.2), \
            pytest.raises(ChangeStopped, match="blocked by gates"):
        change_request("CHG-101")
    (submitted,) = events(stack, "CHG-101", "change_submitted")
    assert submitted["change"]["contributors"] == []  # erin wrote nothing at submit
    (blocked,) = events(stack, "CHG-101", "gates_blocked")
    approval = next(g for g in blocked["gates"] if g["gate"] == "approval")
    assert approval["status"] == "failed"
    assert ("Erin Lead (erin) wrote code in the change's pull request and cannot approve it "
            "as 'engineering_lead'") in approval["reason"]
    (read,) = events(stack, "CHG-101", "code_host_read")
    assert "erin-lead" in read["commit_logins"]
    assert not events(stack, "CHG-101", "deployment_started")


def test_a_ticket_without_a_pull_request_is_refused_at_submit(stack: Stack) -> None:
    with pytest.raises(ChangeStopped, match="evidence.code_review.pull_request: link"):
        change_request("CHG-101")
    assert events(stack, "CHG-101", "validation_failed")


def test_a_high_finding_in_an_attached_sarif_blocks_until_security_waives_it(
        stack: Stack, github: FakeGitHub, approver: ScriptedApprover) -> None:
    number, _ = reviewed_pull(github, scanned=False)
    sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Semgrep", "rules": [
        {"id": "py.sqli", "properties": {"security-severity": "8.1"}}]}},
        "results": [{"ruleId": "py.sqli", "ruleIndex": 0, "level": "error", "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": "src/orders/list.py"}}}]}]}]}
    (stack.settings.resolved_tickets_dir / "CHG-101.sarif").write_text(json.dumps(sarif))
    link(stack, number, sast={"sarif": "CHG-101.sarif"})
    with pytest.raises(ChangeStopped, match="security_scan"):
        change_request("CHG-101")
    (blocked,) = events(stack, "CHG-101", "gates_blocked")
    scan = next(g for g in blocked["gates"] if g["gate"] == "security_scan")
    assert "SARIF file CHG-101.sarif" in scan["reason"] and "#1 high py.sqli" in scan["reason"]


def test_a_valid_waiver_lets_the_finding_through_and_is_recorded(
        stack: Stack, github: FakeGitHub, approver: ScriptedApprover) -> None:
    number, head = reviewed_pull(github)
    github.add_alert(REPO, f"refs/pull/{number}/head", "py/sql-injection",
                     security_severity="high", path="src/orders/list.py")
    waiver = {"finding": "#2", "approved_by": "sam", "reason": "input is a constant",
              "expires": "2099-01-01"}
    link(stack, number, sast={"waivers": [waiver]})
    assert change_request("CHG-101")["outcome"] == "succeeded"
    (applied,) = events(stack, "CHG-101", "sast_waiver_applied")
    assert applied == {**waiver, "head_sha": head}


def findings(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in stack.adapters.change_log.changes():
        assert record.state != "finding", "findings are not changes"
    log = stack.adapters.change_log
    for seq_id in {e.change_id for e in _all_events(stack) if e.type == "practice_finding"}:
        event = log.events(seq_id)[0]  # then the deliveries of its notices
        assert event.type == "practice_finding"
        found.setdefault(event.payload["practice"], []).append(event.payload)
    return found


def _all_events(stack: Stack) -> list[Any]:
    log = stack.adapters.change_log
    with log.engine.connect() as conn:
        ids = conn.execute(sa.select(events_table.c.change_id).distinct()).scalars().all()
    return [e for i in ids for e in log.events(i)]


def with_config_files(stack: Stack) -> Stack:
    """The sample service's production and staging configuration, staging leaking."""
    config = stack.settings.config_dir
    (config / "production.env").write_text("DB_PASSWORD=s3cret-witness-value\nMODE=prod\n")
    (config / "staging.env").write_text("DB_PASSWORD=s3cret-witness-value\n"
                                        "PROD_API_TOKEN=abcdefgh12345678\n")
    services = yaml.safe_load((config / "services.yaml").read_text())
    services["services"]["sample"]["config_files"] = {"production": "production.env",
                                                      "staging": "staging.env"}
    (config / "services.yaml").write_text(yaml.safe_dump(services))
    return Stack(stack.root, stack.settings,
                 stack.adapters.replace(config=load_config(config)), stack.service)


def test_the_audit_finds_each_planted_practice_once(stack: Stack, github: FakeGitHub) -> None:
    stack = with_config_files(stack)
    deploy(stack.root / "var" / "sample", "production", "9.9.9")  # by hand, no change
    orphan = github.add_branch(REPO, "hotfix")  # no pull request, no checks
    dep = github.add_deployment(REPO, orphan, creator="deploy-bot", description="quick fix")
    github.add_deployment_status(REPO, dep, "success", creator="deploy-bot")
    thin, _ = reviewed_pull(github)
    merged = github.merge(REPO, thin)
    github.review(REPO, thin, "bob-n", "DISMISSED")
    github.review(REPO, thin, "deploy-bot")
    github.add_check_run(REPO, merged, CHECK)
    second = github.add_deployment(REPO, merged, creator="alice-m")
    github.add_deployment_status(REPO, second, "success", creator="alice-m")

    with installed(stack.adapters):
        first = practices_audit()
        again = practices_audit()
    assert set(first["practices"]) == {"undocumented_change", "shared_account",
                                       "no_code_review", "ci_bypass",
                                       "production_credentials_outside_production"}
    assert again["new"] == [] and again["findings"] == first["findings"]
    found = findings(stack)
    assert len(found["undocumented_change"]) == 3  # the hand deploy and both deployments
    assert any("9.9.9 was deployed to production" in f["detail"]
               for f in found["undocumented_change"])
    shared = sorted(f["detail"] for f in found["shared_account"])
    assert len(shared) == 2 and all("shared account deploy-bot" in s for s in shared)
    assert any(s.startswith(f"{REPO}#{thin}, deployed as deployment") for s in shared)
    reviews = " / ".join(f["detail"] for f in found["no_code_review"])
    assert len(found["no_code_review"]) == 2 and "came from no pull request" in reviews
    assert "1 approval(s) counted (erin)" in reviews
    (ci,) = found["ci_bypass"]
    assert f"{CHECK} has no run" in ci["detail"]
    kinds = sorted(f["detail"] for f in found["production_credentials_outside_production"])
    assert len(kinds) == 2
    assert "s3cret-witness-value" not in json.dumps(found)
    told = [n for n in read_outbox(stack.outbox) if n.get("kind") == "practice-finding"]
    assert len(told) == 2 * first["findings"]  # carol and sam, once per finding

    quarter = Quarter.containing(stack.adapters.now(), stack.adapters.config.policy.schedule.zone)
    start, end = quarter.bounds(stack.adapters.config.policy.schedule.zone)
    log = stack.adapters.change_log
    report = build_report(quarter, *change_frames(log, start, end), stack.adapters.config.policy,
                          stack.adapters.config.roster, {"ok": True},
                          stack.adapters.now() + timedelta(seconds=1))
    assert len(report.findings) == first["findings"] and report.findings_note == ""
    assert set(report.findings["practice"]) == set(first["practices"])
    assert "PRACTICES-AUDIT" not in set(report.changes["change_id"])


def test_a_clean_history_yields_no_finding(stack: Stack, github: FakeGitHub,
                                           approver: ScriptedApprover) -> None:
    number, head = reviewed_pull(github)
    link(stack, number)
    assert change_request("CHG-101")["outcome"] == "succeeded"
    dep = github.add_deployment(REPO, head, creator="alice-m", description="CHG-101")
    github.add_deployment_status(REPO, dep, "success", creator="alice-m")
    result = practices_audit()
    assert result["findings"] == 0, findings(stack)
    (audited,) = [e for e in _all_events(stack) if e.type == "practices_audited"]
    assert audited.payload["checked"]["sample code host"] == 1
    assert audited.payload["checked"]["sample deploy record"] >= 2
