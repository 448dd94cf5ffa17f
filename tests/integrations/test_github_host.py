"""The GitHub code-host adapter against the local GitHub, over real HTTP."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from pydantic import SecretStr

from domain.code_host import CheckRun, Review, ScanAlert
from integrations.github_host import GitHubCodeHost
from integrations.ports import CodeHost, CodeHostError, CodeHostUnavailable
from tests.fakes.github_server import FakeGitHub

REPO = "acme/api"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        yield fake


def connect(fake: FakeGitHub, token: str | None = None, timeout_seconds: float = 1,
            clock: Callable[[], datetime] | None = None) -> GitHubCodeHost:
    secret = SecretStr(token or fake.add_token("changeflow"))
    return GitHubCodeHost(fake.url, secret, timeout_seconds,
                          clock or (lambda: datetime.now(UTC)))


@pytest.fixture
def host(github: FakeGitHub) -> Iterator[GitHubCodeHost]:
    with connect(github, clock=lambda: NOW) as adapter:
        yield adapter


def test_the_adapter_is_a_code_host(host: GitHubCodeHost) -> None:
    port: CodeHost = host
    assert port is host


# --- pull requests -----------------------------------------------------------------------


def test_a_pull_request_with_reviews_on_an_old_commit(github: FakeGitHub,
                                                     host: GitHubCodeHost) -> None:
    old = "a" * 40
    number = github.add_pull(REPO, "alice", "Fix login", head_sha=old,
                             files=["src/auth/login.py", ("src/web/app.py", "src/auth/app.py")])
    github.review(REPO, number, "bob", submitted_at=NOW - timedelta(hours=2))
    head = github.push(REPO, number)
    github.review(REPO, number, "carol", "CHANGES_REQUESTED", submitted_at=NOW)

    pull = host.pull_request(REPO, number)

    assert (pull.repo, pull.number, pull.author, pull.title) == (REPO, number, "alice",
                                                                 "Fix login")
    assert pull.url == f"https://github.com/{REPO}/pull/{number}"
    assert (pull.head_sha, pull.base_branch, pull.merged, pull.merge_commit_sha) == (
        head, "main", False, None)
    assert pull.changed_paths == ["src/auth/login.py", "src/web/app.py", "src/auth/app.py"]
    assert pull.reviews == [
        Review(reviewer="bob", state="APPROVED", commit_sha=old,
               submitted_at=NOW - timedelta(hours=2)),
        Review(reviewer="carol", state="CHANGES_REQUESTED", commit_sha=head, submitted_at=NOW)]
    assert host.requests_made == 4  # the pull request, its reviews, files and commits
    [sent, *_] = github.requests
    assert (sent.accept, sent.api_version) == ("application/vnd.github+json", "2022-11-28")


def test_a_merged_pull_request(github: FakeGitHub, host: GitHubCodeHost) -> None:
    number = github.add_pull(REPO, "alice")
    merge = github.merge(REPO, number)

    pull = host.pull_request(REPO, number)

    assert (pull.merged, pull.merge_commit_sha, pull.changed_paths, pull.reviews) == (
        True, merge, [], [])


def test_every_page_of_reviews_files_and_commits_is_read(github: FakeGitHub,
                                                         host: GitHubCodeHost) -> None:
    number = github.add_pull(REPO, "alice", files=[f"src/f{i:03}.py" for i in range(250)])
    for i in range(201):
        github.review(REPO, number, f"reviewer{i}", "COMMENTED")
    for i in range(100):
        github.push(REPO, number, author=f"dev{i % 3}", committer="web-flow")

    pull = host.pull_request(REPO, number)

    assert len(pull.changed_paths) == 250 and pull.changed_paths[-1] == "src/f249.py"
    assert len(pull.reviews) == 201 and pull.reviews[-1].reviewer == "reviewer200"
    assert pull.commit_logins == ["alice", "dev0", "web-flow", "dev1", "dev2"]
    assert host.requests_made == 1 + 3 + 3 + 2
    pages = [(r.path.rsplit("/", 1)[1], r.query.get("page"), r.query["per_page"])
             for r in github.requests[1:]]
    assert pages == [("reviews", None, "100"), ("reviews", "2", "100"), ("reviews", "3", "100"),
                     ("files", None, "100"), ("files", "2", "100"), ("files", "3", "100"),
                     ("commits", None, "100"), ("commits", "2", "100")]


def test_a_commit_github_links_to_no_account_adds_no_login(github: FakeGitHub,
                                                          host: GitHubCodeHost) -> None:
    number = github.add_pull(REPO, "alice")
    github.push(REPO, number, author=None, committer="bob-n")
    assert host.pull_request(REPO, number).commit_logins == ["alice", "bob-n"]


def test_commits_github_cannot_list_are_a_refusal(github: FakeGitHub,
                                                 host: GitHubCodeHost) -> None:
    number = github.add_pull(REPO, "alice")
    for _ in range(250):
        github.push(REPO, number)
    with pytest.raises(CodeHostError, match="250 of 251"):
        host.pull_request(REPO, number)


def test_files_github_cannot_list_are_a_refusal() -> None:
    with FakeGitHub(max_listed_files=150) as fake:
        fake.add_repo(REPO)
        number = fake.add_pull(REPO, "alice", files=[f"f{i}" for i in range(151)])
        with connect(fake) as host, pytest.raises(CodeHostError,
                                                  match="150 of 151 changed files"):
            host.pull_request(REPO, number)


# --- pull requests behind a commit -------------------------------------------------------


def test_the_pull_requests_behind_a_commit(github: FakeGitHub, host: GitHubCodeHost) -> None:
    shared = "e" * 40
    first = github.add_pull(REPO, "alice", head_sha=shared)
    pushed = github.push(REPO, first)
    merge = github.merge(REPO, first)
    stacked = github.add_pull(REPO, "bob", head_sha=shared)  # a branch on top of it
    github.add_pull(REPO, "carol")

    assert host.pull_requests_for_commit(REPO, shared) == [first, stacked]  # GitHub: newest first
    assert host.pull_requests_for_commit(REPO, pushed) == [first]
    assert host.pull_requests_for_commit(REPO, merge) == [first]
    assert host.requests_made == 3
    assert github.requests[0].path == f"/repos/{REPO}/commits/{shared}/pulls"
    assert github.requests[0].query == {"per_page": "100"}


def test_every_page_of_pull_requests_behind_a_commit_is_read(github: FakeGitHub,
                                                             host: GitHubCodeHost) -> None:
    sha = "f" * 40
    numbers = [github.add_pull(REPO, "alice", head_sha=sha) for _ in range(230)]

    assert host.pull_requests_for_commit(REPO, sha) == numbers
    assert [r.query.get("page") for r in github.requests] == [None, "2", "3"]


def test_a_commit_no_pull_request_brought_has_none(github: FakeGitHub,
                                                   host: GitHubCodeHost) -> None:
    sha = github.add_branch(REPO, "hotfix")
    github.add_pull(REPO, "alice")
    assert host.pull_requests_for_commit(REPO, sha) == []


def test_an_unknown_commit_behind_pull_requests_is_a_refusal_naming_it(
        github: FakeGitHub, host: GitHubCodeHost) -> None:
    unknown = "0" * 40
    with pytest.raises(CodeHostError, match=f"No commit found for SHA: {unknown}") as refused:
        host.pull_requests_for_commit(REPO, unknown)
    assert f"commit {unknown} of {REPO} (422)" in str(refused.value)
    assert not isinstance(refused.value, CodeHostUnavailable)

    github.fail(r"/commits/[^/]+/pulls$", 404)
    with pytest.raises(CodeHostError, match=rf"no pull requests associated with commit "
                                            rf"{unknown} of {REPO} \(404: Not Found\)") as gone:
        host.pull_requests_for_commit(REPO, unknown)
    assert not isinstance(gone.value, CodeHostUnavailable)
    with pytest.raises(CodeHostError, match=rf"commit {unknown} of acme/gone \(404"):
        host.pull_requests_for_commit("acme/gone", unknown)


def test_a_pull_request_behind_a_commit_without_a_number_is_garbled(
        github: FakeGitHub, host: GitHubCodeHost) -> None:
    github.fail(r"/pulls$", 200, body=[{"number": 3}, {"title": "no number"}])
    with pytest.raises(CodeHostUnavailable, match="garbled: number is missing or not"):
        host.pull_requests_for_commit(REPO, "a" * 40)


# --- required checks and check runs ------------------------------------------------------


def test_required_checks_from_branch_protection(github: FakeGitHub,
                                                host: GitHubCodeHost) -> None:
    github.add_branch(REPO, "release/1.2")
    github.add_branch(REPO, "dev")
    github.add_branch(REPO, "legacy")
    github.protect(REPO, "main", ["build", "test"])
    github.protect(REPO, "release/1.2", ["build"])
    github.protect(REPO, "legacy", None)

    assert host.required_checks(REPO, "main") == ["build", "test"]
    assert host.required_checks(REPO, "release/1.2") == ["build"]
    assert host.required_checks(REPO, "dev") is None
    assert host.required_checks(REPO, "legacy") == []
    with pytest.raises(CodeHostError, match="Branch not found") as missing:
        host.required_checks(REPO, "gone")
    assert "acme/api@gone" in str(missing.value)
    assert not isinstance(missing.value, CodeHostUnavailable)


def test_required_checks_join_contexts_and_check_names(github: FakeGitHub,
                                                      host: GitHubCodeHost) -> None:
    github.fail(r"/required_status_checks$", 200, body={
        "contexts": ["build"], "checks": [{"context": "build", "app_id": 15368},
                                          {"context": "codeql", "app_id": None}]})
    assert host.required_checks(REPO, "main") == ["build", "codeql"]
    github.fail(r"/required_status_checks$", 200, body={"contexts": ["build", 7]})
    with pytest.raises(CodeHostUnavailable, match=r"garbled: contexts\[\] is missing"):
        host.required_checks(REPO, "main")


def test_check_runs_latest_of_each_name_over_three_pages(github: FakeGitHub,
                                                         host: GitHubCodeHost) -> None:
    sha = github.add_branch(REPO, "topic")
    github.add_check_run(REPO, sha, "test", conclusion="failure")
    github.add_check_run(REPO, sha, "test")
    github.add_check_run(REPO, sha, "lint", status="in_progress")
    for i in range(220):
        github.add_check_run(REPO, sha, f"matrix-{i}", conclusion="skipped")

    runs = host.check_runs(REPO, sha)

    assert len(runs) == 222 and host.requests_made == 3
    assert runs[:2] == [
        CheckRun(name="test", status="completed", conclusion="success",
                 url=runs[0].url),
        CheckRun(name="lint", status="in_progress", conclusion=None, url=runs[1].url)]
    assert runs[0].url and runs[0].url.startswith("https://github.com/acme/api/runs/")
    assert github.requests[0].query == {"filter": "latest", "per_page": "100"}


# --- code scanning -----------------------------------------------------------------------


def test_no_analysis_at_all_is_not_analysed(github: FakeGitHub, host: GitHubCodeHost) -> None:
    scan = host.code_scan(REPO, "a" * 40, "refs/pull/1/head")
    assert (scan.analysed, scan.alerts) == (False, [])


def test_an_analysis_of_another_commit_is_not_this_ones(github: FakeGitHub,
                                                        host: GitHubCodeHost) -> None:
    github.add_analysis(REPO, "b" * 40, "refs/pull/1/head")
    assert host.code_scan(REPO, "a" * 40, "refs/pull/1/head").analysed is False
    assert github.requests[0].query["sha"] == "a" * 40


def test_open_alerts_on_the_ref_with_their_severity(github: FakeGitHub,
                                                    host: GitHubCodeHost) -> None:
    sha, ref = "a" * 40, "refs/pull/12/head"
    github.add_analysis(REPO, sha, ref)
    high = github.add_alert(REPO, ref, "py/sql-injection", severity="error",
                            security_severity="high", path="src/db.py")
    note = github.add_alert(REPO, ref, "py/unused-import", severity="note")
    github.add_alert(REPO, ref, "py/dismissed", severity="error", state="dismissed")
    github.add_alert(REPO, "refs/heads/main", "py/elsewhere", security_severity="critical")

    scan = host.code_scan(REPO, sha, ref)

    assert scan.analysed is True
    assert scan.alerts == [
        ScanAlert(number=note, rule_id="py/unused-import", severity="note", state="open",
                  tool="CodeQL", path="src/app.py",
                  url=f"https://github.com/{REPO}/security/code-scanning/{note}"),
        ScanAlert(number=high, rule_id="py/sql-injection", severity="high", state="open",
                  tool="CodeQL", path="src/db.py",
                  url=f"https://github.com/{REPO}/security/code-scanning/{high}")]
    assert github.requests[-1].query == {"ref": ref, "state": "open", "per_page": "100"}


# --- deployments -------------------------------------------------------------------------


def test_deployments_with_their_latest_state(github: FakeGitHub, host: GitHubCodeHost) -> None:
    first = github.add_deployment(REPO, "a" * 40, creator="deployer", description="v1",
                                  created_at=NOW - timedelta(days=2))
    github.add_deployment_status(REPO, first, "in_progress", creator="deployer")
    github.add_deployment_status(REPO, first, "success", creator="deployer")
    second = github.add_deployment(REPO, "b" * 40, creator="mallory", ref="main",
                                   created_at=NOW - timedelta(days=1))
    github.add_deployment(REPO, "c" * 40, "staging", creator="deployer")

    found = host.deployments(REPO, "production")

    assert [(d.id, d.sha, d.ref, d.creator, d.state, d.description) for d in found] == [
        (second, "b" * 40, "main", "mallory", None, None),
        (first, "a" * 40, "a" * 40, "deployer", "success", "v1")]
    assert found[1].created_at == NOW - timedelta(days=2)
    assert found[1].url == f"{github.url}/repos/{REPO}/deployments/{first}"
    assert {d.environment for d in found} == {"production"} and found[0].repo == REPO
    assert host.requests_made == 1 + 2


def test_deployments_stop_paging_at_since(github: FakeGitHub, host: GitHubCodeHost) -> None:
    for hour in range(230):
        github.add_deployment(REPO, "d" * 40, creator="deployer",
                              created_at=NOW - timedelta(hours=hour))

    found = host.deployments(REPO, "production", since=NOW - timedelta(hours=104))

    assert len(found) == 105 and found[-1].created_at == NOW - timedelta(hours=104)
    assert github.count("GET", r"/deployments$") == 2  # the third page is never asked for
    assert host.requests_made == 2 + 105
    assert host.deployments(REPO, "production", since=NOW + timedelta(hours=1)) == []


def test_a_deployment_created_over_http_is_read_back(github: FakeGitHub,
                                                     host: GitHubCodeHost) -> None:
    token = github.add_token("release-bot")
    sha = github.add_branch(REPO, "release")
    github.add_check_run(REPO, sha, "test")
    created = requests.post(f"{github.url}/repos/{REPO}/deployments",
                            json={"ref": "release", "environment": "production"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
    requests.post(f"{github.url}/repos/{REPO}/deployments/{created.json()['id']}/statuses",
                  json={"state": "failure"}, headers={"Authorization": f"Bearer {token}"},
                  timeout=5)

    [deployment] = host.deployments(REPO, "production")

    assert (deployment.sha, deployment.ref, deployment.creator, deployment.state) == (
        sha, "release", "release-bot", "failure")


# --- refusals ------------------------------------------------------------------------------


def test_bad_credentials_are_refused_without_the_token(github: FakeGitHub,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    witness = "ghp_witness_0123456789abcdef"
    with connect(github, token=witness) as host:
        with pytest.raises(CodeHostError, match="Bad credentials") as refused:
            host.pull_request(REPO, 1)
        assert "refused the credentials (401)" in str(refused.value)
        assert not isinstance(refused.value, CodeHostUnavailable)
        assert witness not in str(refused.value) and witness not in repr(refused.value)
        assert witness not in repr(host.__dict__)
    assert witness not in caplog.text


def test_a_404_names_the_resource(github: FakeGitHub, host: GitHubCodeHost) -> None:
    with pytest.raises(CodeHostError, match=r"no pull request acme/api#99 \(404: Not Found\)"):
        host.pull_request(REPO, 99)
    with pytest.raises(CodeHostError, match=r"no deployments of acme/gone to production"):
        host.deployments("acme/gone", "production")


def test_a_name_that_is_not_owner_slash_repo_is_refused_unsent(host: GitHubCodeHost) -> None:
    for bad in ("acme", "acme/api/../../user", "../api", "acme/api?x=1"):
        with pytest.raises(CodeHostError, match="is not a repository"):
            host.check_runs(bad, "a" * 40)
    assert host.requests_made == 0


def test_a_forbidden_answer_that_is_no_rate_limit_is_a_refusal(github: FakeGitHub,
                                                               host: GitHubCodeHost) -> None:
    github.fail(r"/code-scanning/analyses$", 403, body={
        "message": "Advanced Security must be enabled for this repository to use code "
                   "scanning.", "status": "403"})
    with pytest.raises(CodeHostError, match="Advanced Security must be enabled") as refused:
        host.code_scan(REPO, "a" * 40, "refs/heads/main")
    assert not isinstance(refused.value, CodeHostUnavailable)


# --- worth retrying ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "retry_after", "expected"), [
    (403, 30, 30.0), (429, 7, 7.0), (403, None, 60.0), (429, NOW + timedelta(seconds=90), 90.0)])
def test_secondary_rate_limits_wait_as_github_says(github: FakeGitHub, host: GitHubCodeHost,
                                                   status: int, retry_after: int | None,
                                                   expected: float) -> None:
    number = github.add_pull(REPO, "alice")
    github.secondary_rate_limit(r"/reviews$", retry_after, status=status)

    with pytest.raises(CodeHostUnavailable, match="secondary rate limit") as limited:
        host.pull_request(REPO, number)

    assert limited.value.retry_after == expected
    assert host.pull_request(REPO, number).number == number


def test_the_primary_rate_limit_waits_until_its_reset(github: FakeGitHub,
                                                      host: GitHubCodeHost) -> None:
    github.primary_rate_limit(r"/check-runs$", reset_at=NOW + timedelta(minutes=20))
    with pytest.raises(CodeHostUnavailable, match="rate limit") as limited:
        host.check_runs(REPO, "main")
    assert limited.value.retry_after == 1200.0



def test_a_spent_rate_limit_budget_waits_until_its_reset(github: FakeGitHub) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # the fake's budget runs on real time
    github.set_rate_limit(2, reset_at=now + timedelta(seconds=45))
    with connect(github, clock=lambda: now) as host:
        host.check_runs(REPO, "main")
        host.check_runs(REPO, "main")
        with pytest.raises(CodeHostUnavailable, match="API rate limit exceeded") as spent:
            host.check_runs(REPO, "main")
    assert spent.value.retry_after == 45.0


def test_a_reset_already_past_waits_nothing(github: FakeGitHub) -> None:
    github.primary_rate_limit(r"/check-runs$", reset_at=NOW - timedelta(minutes=1))
    with connect(github, clock=lambda: NOW) as host, \
            pytest.raises(CodeHostUnavailable) as limited:
        host.check_runs(REPO, "main")
    assert limited.value.retry_after == 0.0


@pytest.mark.parametrize(("status", "retry_after", "expected"), [
    (502, None, None), (503, "5", 5.0)])
def test_server_errors_are_worth_retrying(github: FakeGitHub, host: GitHubCodeHost,
                                          status: int, retry_after: str | None,
                                          expected: float | None) -> None:
    github.fail(r"/deployments$", status,
                headers={"Retry-After": retry_after} if retry_after else None)
    with pytest.raises(CodeHostUnavailable, match=f"answered {status}") as busy:
        host.deployments(REPO, "production")
    assert busy.value.retry_after == expected
    assert host.deployments(REPO, "production") == []


def test_a_stall_a_malformed_body_and_no_server_are_worth_retrying(
        github: FakeGitHub) -> None:
    number = github.add_pull(REPO, "alice")
    with connect(github, timeout_seconds=0.3) as host:
        github.stall(r"/pulls/\d+$", seconds=10)
        with pytest.raises(CodeHostUnavailable, match="ReadTimeout"):
            host.pull_request(REPO, number)
        github.malformed(r"/files$")
        with pytest.raises(CodeHostUnavailable, match="not JSON"):
            host.pull_request(REPO, number)
        assert host.pull_request(REPO, number).number == number
    with FakeGitHub() as gone:
        url = gone.url
    with GitHubCodeHost(url, SecretStr("t"), timeout_seconds=1) as host, \
            pytest.raises(CodeHostUnavailable, match="ConnectionError"):
        host.check_runs(REPO, "main")


@pytest.mark.parametrize(("path", "body", "field"), [
    (r"/pulls/\d+$", {"number": 1, "html_url": "u", "title": "t", "user": {"login": "a"},
                      "head": {}, "base": {"ref": "main"}, "merged": False}, "head.sha"),
    (r"/pulls/\d+$", {"number": "1"}, "number"),
    (r"/reviews$", [{"user": {"login": "bob"}, "state": 1}], "state"),
    (r"/reviews$", {"message": "not a list"}, "the answer"),
    (r"/files$", [{"filename": "a.py", "previous_filename": 3}], "previous_filename"),
])
def test_a_garbled_answer_names_the_field(github: FakeGitHub, host: GitHubCodeHost, path: str,
                                          body: object, field: str) -> None:
    number = github.add_pull(REPO, "alice")
    github.fail(path, 200, body=body)
    with pytest.raises(CodeHostUnavailable, match=f"garbled: {field} is missing or not"):
        host.pull_request(REPO, number)


@pytest.mark.parametrize(("body", "field"), [
    ([{"sha": "c" * 40, "author": {"id": 7}, "committer": None}], "[0]author.login"),
    ([{"sha": "c" * 40, "author": None, "committer": "mallory"}], "[0]committer"),
    ({"message": "not a list"}, "the answer"),
])
def test_garbled_commit_writers_are_named_not_taken_as_nobody(
        github: FakeGitHub, host: GitHubCodeHost, body: object, field: str) -> None:
    """A commit author GitHub garbles could be an approver: never read as "no one"."""
    number = github.add_pull(REPO, "alice")
    github.fail(r"/pulls/\d+/commits$", 200, body=body)
    with pytest.raises(CodeHostUnavailable, match=re.escape(f"garbled: {field} is missing")):
        host.pull_request(REPO, number)


def test_a_version_ref_without_a_commit_is_garbled(github: FakeGitHub,
                                                   host: GitHubCodeHost) -> None:
    number = github.add_pull(REPO, "alice")
    github.tag(REPO, "v1.0.0", github.push(REPO, number))
    github.fail(r"/commits/v1\.0\.0$", 200, body={"commit": {}})
    with pytest.raises(CodeHostUnavailable, match="garbled: sha is missing"):
        host.commit_of(REPO, "v1.0.0")
    assert len(host.commit_of(REPO, "v1.0.0")) == 40


def test_a_next_link_to_another_host_is_not_followed(github: FakeGitHub,
                                                     host: GitHubCodeHost) -> None:
    github.fail(r"/deployments$", 200, body=[], headers={
        "Link": '<https://evil.example/repos/acme/api/deployments?page=2>; rel="next"'})
    with pytest.raises(CodeHostUnavailable, match="next page link leaves the API"):
        host.deployments(REPO, "production")
    assert host.requests_made == 1


def test_an_enterprise_base_url() -> None:
    with FakeGitHub(prefix="/api/v3") as fake:
        fake.add_repo(REPO)
        fake.add_branch(REPO, "release")
        fake.protect(REPO, "release", ["ci"])
        with connect(fake) as host:
            assert host.required_checks(REPO, "release") == ["ci"]
