"""Section 6's rules over facts already read (`domain.practices`): no log, no host, no file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.code_host import CheckRun, Deployment, PullRequest, Review
from domain.credentials import CredentialFinding
from domain.models import ChangeEvent, Roster
from domain.policy import Policy
from domain.practices import (
    DeployEntry,
    Documented,
    Finding,
    HostDeployment,
    credential_findings,
    deploy_record_findings,
    host_deployment_findings,
    production_history,
    shared_approval_findings,
)

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=3)
REPO = "example/sample"
HEAD = "a" * 40


class Log:
    """Events as the change log returns them, numbered in order."""

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []

    def add(self, cid: str, type_: str, at: datetime = NOW, **payload: Any) -> Log:
        seq = len(self.events) + 1
        self.events.append(ChangeEvent(seq=seq, change_id=cid, type=type_, at=at,
                                       actor="alice", payload=payload, prev_hash=f"{seq - 1}",
                                       hash=f"{seq}"))
        return self

    def submit(self, cid: str, service: str, author: str = "alice",
               at: datetime = NOW) -> Log:
        return self.add(cid, "change_submitted", at, service=service, author=author)

    def approve(self, cid: str, person: str, at: datetime = NOW) -> Log:
        return self.add(cid, "approval_recorded", at, role="engineering_lead", person_id=person,
                        decision="approve", purpose="review")


def read(cid: str, sha: str) -> dict[str, Any]:
    """A `code_host_read` payload naming commit `sha`."""
    return {"pull_request": f"{REPO}#1", "url": "u", "head_sha": sha, "author": "alice-m",
            "reviews": [], "required_checks": None, "required_from": "services.yaml",
            "checks": [], "scan": "none", "analysed": False, "open_alerts": [],
            "changed_paths": []}


def test_the_history_sorts_each_fact_by_its_changes_latest_service() -> None:
    log = (Log().submit("CHG-1", "billing", at=NOW - timedelta(days=9))
           .add("CHG-1", "validation_failed", problems=["p"], service="sample", author="bob")
           .add("CHG-1", "code_host_read", **read("CHG-1", HEAD))
           .add("CHG-1", "deployment_started", version="1.1.0", previous_version="1.0.0")
           .add("CHG-1", "rollback_started", NOW + timedelta(minutes=1), to_version="1.0.0",
                reason="r")
           .add("CHG-1", "rollback_succeeded", NOW + timedelta(minutes=2), to_version="0.9.0",
                minutes=2, estimate_minutes=10)
           .submit("CHG-2", "billing").add("CHG-2", "deployment_started", version="7",
                                           previous_version="6")
           .add("CHG-3", "deployment_started", version="8", previous_version="7")  # no service
           .add("CHG-2", "note", text="not a fact"))
    history = production_history(log.events)
    assert set(history.services) == {"sample", "billing"}
    sample = history.of("sample")
    assert sample.deployed == {"CHG-1"} and sample.shas == {HEAD: "CHG-1"}
    assert sample.versions == {"1.1.0": [(NOW, "CHG-1")],
                               "1.0.0": [(NOW + timedelta(minutes=1), "CHG-1")],
                               "0.9.0": [(NOW + timedelta(minutes=2), "CHG-1")]}
    assert history.of("billing").versions == {"7": [(NOW, "CHG-2")]}
    assert history.of("search") == Documented()
    assert history.authors == {"CHG-1": "bob", "CHG-2": "alice"}


def test_approvals_are_listed_by_their_changes_opening_then_the_log() -> None:
    log = (Log().submit("CHG-2", "sample", at=NOW).submit("CHG-1", "billing", at=NOW)
           .approve("CHG-2", "erin").approve("CHG-1", "deploybot").approve("CHG-2", "bob"))
    approvals = production_history(log.events).approvals
    assert [(a.change_id, a.seq, a.service) for a in approvals] == [
        ("CHG-1", 4, "billing"), ("CHG-2", 3, "sample"), ("CHG-2", 5, "sample")]
    earlier = Log().submit("CHG-9", "sample", at=NOW - timedelta(days=1))
    earlier.events += log.events
    assert production_history(earlier.events).approvals[0].change_id == "CHG-1"


def test_only_shared_accounts_approvals_are_findings(roster: Roster) -> None:
    log = Log().submit("CHG-1", "sample").approve("CHG-1", "erin").approve("CHG-1", "deploybot")
    (found,) = shared_approval_findings(production_history(log.events).approvals, roster)
    assert (found.practice, found.service, found.subject, found.change_id) == (
        "shared_account", "sample", "approval:3", "CHG-1")
    assert found.detail == ("CHG-1: approval as engineering_lead recorded for shared account "
                            "deploybot")


def test_a_finding_id_is_the_recipe_the_recorded_findings_carry() -> None:
    """Ids recorded by earlier audits must come out the same, or findings are doubled."""
    one = Finding("shared_account", "sample", "approval:3", "one detail", "CHG-1")
    assert one.finding_id == "F-0CB4FF0E4475"
    assert Finding("shared_account", "sample", "approval:3", "other", source="x").finding_id \
        == one.finding_id
    assert Finding("shared_account", "sample", "approval:4", "").finding_id != one.finding_id


def entry(version: str, at: datetime, environment: str = "production") -> DeployEntry:
    return DeployEntry(environment, version, at)


def test_a_deploy_no_change_recorded_is_undocumented() -> None:
    known = Documented(versions={"1.1.0": [(NOW, "CHG-1")], "1.2.0": [(NOW, "CHG-2")]})
    entries = [
        entry("1.1.0", NOW + timedelta(minutes=1)),  # the change's deploy
        entry("1.2.0", NOW - timedelta(minutes=4)),  # recorded just before its change: slack
        entry("1.2.0", NOW - timedelta(minutes=6)),  # too long before
        entry("9.9.9", NOW), entry("1.0.0", NOW),    # by hand; the baseline
        entry("9.9.9", NOW, "staging"), entry("9.9.9", SINCE - timedelta(seconds=1))]
    found, checked = deploy_record_findings("sample", "1.0.0", entries, "/var/h.jsonl", known,
                                            SINCE)
    assert checked == 5
    assert [(f.practice, f.subject, f.source) for f in found] == [
        ("undocumented_change", "deploy-record:2026-11-26T08:54:00+00:00", "/var/h.jsonl"),
        ("undocumented_change", f"deploy-record:{NOW.isoformat()}", "/var/h.jsonl")]
    assert found[1].detail == ("9.9.9 was deployed to production at 2026-11-26 09:00 UTC by the "
                               "deploy command, and no change recorded it")


def deployment(sha: str = HEAD, creator: str = "alice-m", description: str | None = None,
               ref: str = "v1.1.0") -> Deployment:
    return Deployment(id=7, repo=REPO, sha=sha, ref=ref, environment="production",
                      creator=creator, created_at=NOW, description=description, state="success",
                      url="https://api/deployments/7")


def pull(*reviewers: str, author: str = "alice-m") -> PullRequest:
    return PullRequest(repo=REPO, number=12, url="https://pr/12", author=author, title="t",
                       head_sha=HEAD, base_branch="main", merged=True, merge_commit_sha=HEAD,
                       changed_paths=["src/app.py"],
                       reviews=[Review(reviewer=r, state="APPROVED", commit_sha=HEAD,
                                       submitted_at=NOW) for r in reviewers])


GREEN = [CheckRun(name="ci/tests", status="completed", conclusion="success", url=None)]
KNOWN = Documented(shas={HEAD: "CHG-1"}, deployed={"CHG-1", "CHG-10"})


def judged(seen: HostDeployment, policy: Policy, roster: Roster,
           authors: dict[str, str] | None = None,
           known: Documented = KNOWN) -> list[tuple[str, str | None, str]]:
    found = host_deployment_findings("sample", ["ci/tests"], seen, known,
                                     authors or {"CHG-1": "alice"}, policy, roster)
    return [(f.practice, f.change_id, f.detail) for f in found]


def test_a_reviewed_green_deployment_of_a_change_is_clean(policy: Policy,
                                                          roster: Roster) -> None:
    assert judged(HostDeployment(deployment(), pull("erin-lead", "bob-n"), None, GREEN),
                  policy, roster) == []


def test_a_deployment_from_no_pull_request_by_a_shared_account(policy: Policy,
                                                               roster: Roster) -> None:
    seen = HostDeployment(deployment("b" * 40, "deploy-bot", "quick fix"), None, ["ci/tests"],
                          [])
    where = "deployment 7 of bbbbbbb (2026-11-26 09:00 UTC)"
    assert judged(seen, policy, roster) == [
        ("shared_account", None, f"{where} was made by shared account deploy-bot"),
        ("undocumented_change", None, f"{where} belongs to no change in the change log"),
        ("no_code_review", None, f"{where}: the commit came from no pull request"),
        ("ci_bypass", None, f"{where}: required checks on bbbbbbb: ci/tests has no run")]


def test_a_thin_review_and_a_shared_approver_are_named(policy: Policy, roster: Roster) -> None:
    found = judged(HostDeployment(deployment(), pull("erin-lead", "deploy-bot"), None, GREEN),
                   policy, roster)
    assert [(p, c) for p, c, _ in found] == [("no_code_review", "CHG-1"),
                                             ("shared_account", "CHG-1")]
    assert "1 approval(s) counted (erin)" in found[0][2]
    assert found[1][2].startswith(f"{REPO}#12, deployed as deployment 7")
    finding = host_deployment_findings("sample", [], HostDeployment(
        deployment(), pull("erin-lead", "deploy-bot"), None, GREEN), KNOWN, {}, policy,
        roster)[1]
    assert (finding.subject, finding.source) == (f"{REPO}#12:deploy-bot", "GitHub pull requests")


def test_the_changes_author_does_not_count_as_a_reviewer(policy: Policy,
                                                         roster: Roster) -> None:
    seen = HostDeployment(deployment(), pull("erin-lead", "bob-n", author="oscar-oncall"), None,
                          GREEN)
    assert judged(seen, policy, roster, {"CHG-1": "oscar"}) == []
    (found,) = judged(seen, policy, roster, {"CHG-1": "bob"})
    assert found[0] == "no_code_review" and "bob-n is the author" in found[2]


def test_a_change_named_in_the_description_owns_the_deployment(policy: Policy,
                                                               roster: Roster) -> None:
    def owner(description: str) -> str | None:
        seen = HostDeployment(deployment("c" * 40, description=description),
                              pull("erin-lead", "bob-n"), None, GREEN)
        found = judged(seen, policy, roster)
        return None if found else "owned"

    assert owner("deploys CHG-10 today") == "owned"
    assert owner("deploys CHG-101") is None and owner("CHG-10-rc") is None


@pytest.mark.parametrize(("protected", "runs", "reason"), [
    (None, [CheckRun(name="ci/tests", status="completed", conclusion="failure", url=None)],
     "ci/tests ended failure"),
    (["ci/lint"], GREEN, "ci/lint has no run"),
])
def test_checks_that_did_not_succeed_are_a_bypass(protected: list[str] | None,
                                                  runs: list[CheckRun], reason: str,
                                                  policy: Policy, roster: Roster) -> None:
    (found,) = judged(HostDeployment(deployment(), pull("erin-lead", "bob-n"), protected, runs),
                      policy, roster)
    assert found[0] == "ci_bypass" and reason in found[2]


def test_credential_findings_name_kind_environment_and_variables() -> None:
    leak = CredentialFinding(kind="shared_with_production", environment="staging",
                             names=("DB_PASSWORD", "production:DB_PASSWORD"), reason="same")
    (found,) = credential_findings("sample", [leak])
    assert (found.practice, found.subject, found.detail, found.source) == (
        "production_credentials_outside_production",
        "shared_with_production:staging:DB_PASSWORD,production:DB_PASSWORD", "same",
        "config_files")
