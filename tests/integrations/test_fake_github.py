"""The fake GitHub itself, driven with plain `requests` over 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.fakes.github_server import FakeGitHub

REPO = "acme/api"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        yield fake


class Client:
    """A tiny GitHub client: the token, GitHub's headers, a timeout."""

    def __init__(self, fake: FakeGitHub, token: str) -> None:
        self.fake = fake
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}",
                                     "Accept": "application/vnd.github+json",
                                     "X-GitHub-Api-Version": "2022-11-28"})

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.fake.url}{path}", params=params, timeout=5)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(f"{self.fake.url}{path}", json=body, timeout=5)


@pytest.fixture
def client(github: FakeGitHub) -> Iterator[Client]:
    c = Client(github, github.add_token("deployer"))
    yield c
    c.session.close()


def test_a_token_is_required_and_never_recorded(github: FakeGitHub, client: Client) -> None:
    anonymous = requests.get(f"{github.url}/user", timeout=5)
    wrong = requests.get(f"{github.url}/user", headers={"Authorization": "Bearer nope"},
                         timeout=5)
    me = client.get("/user")

    assert anonymous.status_code == wrong.status_code == 401
    assert wrong.json()["message"] == "Bad credentials"
    assert me.json()["login"] == "deployer"
    assert int(me.headers["x-ratelimit-remaining"]) == int(me.headers["x-ratelimit-limit"]) - 1
    assert [(r.login, r.status) for r in github.requests] == [
        (None, 401), (None, 401), ("deployer", 200)]
    assert github.requests[-1].api_version == "2022-11-28"
    token = client.session.headers["Authorization"]
    assert str(token).split()[1] not in repr(github.requests)


def test_lists_page_with_github_link_headers(github: FakeGitHub, client: Client) -> None:
    number = github.add_pull(REPO, "alice", files=[f"src/f{i}.py" for i in range(75)])

    first = client.get(f"/repos/{REPO}/pulls/{number}/files")
    middle = client.get(f"/repos/{REPO}/pulls/{number}/files", per_page=25, page=2)
    last = client.session.get(middle.links["last"]["url"], timeout=5)

    assert len(first.json()) == 30 and first.links["next"]["url"].endswith("page=2")
    assert set(middle.links) == {"prev", "first", "next", "last"}
    assert middle.links["next"]["url"] == (f"{github.url}/repos/{REPO}/pulls/{number}/files"
                                           "?per_page=25&page=3")
    assert [f["filename"] for f in last.json()][-1] == "src/f74.py"
    assert "next" not in last.links and len(last.json()) == 25


def test_pull_request_reviews_and_renames_in_github_shapes(github: FakeGitHub,
                                                           client: Client) -> None:
    first_head = "f" * 40
    number = github.add_pull(REPO, "alice", "Fix login", files=[("src/new.py", "src/old.py")],
                             head_sha=first_head)
    github.review(REPO, number, "bob")
    head = github.push(REPO, number)
    github.review(REPO, number, "carol", "PENDING")

    pull = client.get(f"/repos/{REPO}/pulls/{number}").json()
    reviews = client.get(f"/repos/{REPO}/pulls/{number}/reviews").json()
    [renamed] = client.get(f"/repos/{REPO}/pulls/{number}/files").json()

    assert (pull["head"]["sha"], pull["base"]["ref"], pull["user"]["login"]) == (
        head, "main", "alice")
    assert (pull["merged"], pull["merge_commit_sha"], pull["changed_files"]) == (False, None, 1)
    assert [(r["user"]["login"], r["state"], r["commit_id"]) for r in reviews] == [
        ("bob", "APPROVED", first_head)]  # carol's pending review is hers alone
    assert (renamed["status"], renamed["previous_filename"]) == ("renamed", "src/old.py")
    merge = github.merge(REPO, number)
    assert client.get(f"/repos/{REPO}/pulls/{number}").json()["merge_commit_sha"] == merge
    assert client.get(f"/repos/{REPO}/pulls/999").status_code == 404
    assert client.get("/repos/acme/nope/pulls/1").json()["message"] == "Not Found"


def test_pull_requests_associated_with_a_commit(github: FakeGitHub, client: Client) -> None:
    first_head = "f" * 40
    number = github.add_pull(REPO, "alice", "Fix login", head_sha=first_head)
    head = github.push(REPO, number)
    other = github.add_pull(REPO, "bob", head_sha=first_head)
    unrelated = github.add_branch(REPO, "hotfix")

    def pulls(sha: str, **params: Any) -> requests.Response:
        return client.get(f"/repos/{REPO}/commits/{sha}/pulls", **params)

    listed = pulls(first_head).json()
    assert [p["number"] for p in listed] == [other, number]  # newest first
    assert (listed[1]["head"]["sha"], listed[1]["base"]["ref"], listed[1]["title"]) == (
        head, "main", "Fix login")
    assert "merged" not in listed[1] and "changed_files" not in listed[1]  # a simple pull
    assert [p["number"] for p in pulls(head).json()] == [number]
    merge = github.merge(REPO, number)
    [merged] = pulls(merge).json()
    assert (merged["number"], merged["merge_commit_sha"], merged["state"]) == (
        number, merge, "closed")
    assert pulls(unrelated).json() == []
    paged = pulls(first_head, per_page=1)
    assert len(paged.json()) == 1 and paged.links["next"]["url"].endswith("per_page=1&page=2")
    unknown = pulls("0" * 40)
    assert unknown.status_code == 422
    assert unknown.json()["message"] == f"No commit found for SHA: {'0' * 40}"


def test_required_status_checks_answer_githubs_404s(github: FakeGitHub, client: Client) -> None:
    github.add_branch(REPO, "release/1.2")
    github.add_branch(REPO, "dev")
    github.protect(REPO, "main", ["build", "test"])
    github.protect(REPO, "release/1.2", None)

    def checks(branch: str) -> requests.Response:
        return client.get(f"/repos/{REPO}/branches/{branch}/protection/required_status_checks")

    assert checks("main").json()["contexts"] == ["build", "test"]
    assert [c["context"] for c in checks("main").json()["checks"]] == ["build", "test"]
    assert checks("release%2F1.2").json()["message"] == "Required status checks not enabled"
    assert checks("dev").json()["message"] == "Branch not protected"
    assert checks("nope").json()["message"] == "Branch not found"


def test_check_runs_latest_per_name_unless_all(github: FakeGitHub, client: Client) -> None:
    sha = github.add_branch(REPO, "topic")
    github.add_check_run(REPO, sha, "test", conclusion="failure")
    github.add_check_run(REPO, sha, "test")
    github.add_check_run(REPO, sha, "lint", status="in_progress")

    latest = client.get(f"/repos/{REPO}/commits/{sha}/check-runs").json()
    every = client.get(f"/repos/{REPO}/commits/topic/check-runs", filter="all").json()

    assert latest["total_count"] == 2
    assert [(r["name"], r["status"], r["conclusion"]) for r in latest["check_runs"]] == [
        ("test", "completed", "success"), ("lint", "in_progress", None)]
    assert every["total_count"] == 3
    assert client.get(f"/repos/{REPO}/commits/{'0' * 40}/check-runs").status_code == 422


def test_code_scanning_analyses_and_alerts_per_ref(github: FakeGitHub, client: Client) -> None:
    scanning = f"/repos/{REPO}/code-scanning"
    assert client.get(f"{scanning}/analyses").json()["message"] == "no analysis found"
    assert client.get(f"{scanning}/alerts").status_code == 404
    github.add_analysis(REPO, "a" * 40, "refs/pull/1/head")
    github.add_analysis(REPO, "b" * 40, "refs/heads/main")
    high = github.add_alert(REPO, "refs/pull/1/head", "py/sql-injection",
                            severity="error", security_severity="high")
    github.add_alert(REPO, "refs/pull/1/head", "py/unused", severity="note", state="dismissed")
    github.set_alert(REPO, high, "refs/heads/main", "fixed")

    [analysis] = client.get(f"{scanning}/analyses", sha="a" * 40).json()
    on_pull = client.get(f"{scanning}/alerts", ref="refs/pull/1/head", state="open").json()
    on_main = client.get(f"{scanning}/alerts").json()

    assert (analysis["commit_sha"], analysis["ref"], analysis["tool"]["name"]) == (
        "a" * 40, "refs/pull/1/head", "CodeQL")
    assert [(a["number"], a["rule"]["security_severity_level"], a["state"]) for a in on_pull] \
        == [(high, "high", "open")]
    assert on_pull[0]["most_recent_instance"]["location"]["path"] == "src/app.py"
    assert [(a["number"], a["state"]) for a in on_main] == [(high, "fixed")]


def test_deployments_are_created_like_a_deployer_would(github: FakeGitHub,
                                                        client: Client) -> None:
    sha = github.add_branch(REPO, "topic")
    github.add_check_run(REPO, sha, "test", conclusion="failure")
    deployments = f"/repos/{REPO}/deployments"

    refused = client.post(deployments, {"ref": "topic", "environment": "production"})
    created = client.post(deployments, {"ref": "topic", "environment": "production",
                                        "required_contexts": [], "description": "v1"})
    number = created.json()["id"]
    for state in ("in_progress", "success"):
        assert client.post(f"{deployments}/{number}/statuses", {"state": state}).ok
    listed = client.get(deployments, environment="production").json()
    statuses = client.get(f"{deployments}/{number}/statuses").json()

    assert refused.status_code == 409 and "status checks failed" in refused.json()["message"]
    assert created.status_code == 201
    assert [(d["id"], d["sha"], d["ref"], d["creator"]["login"]) for d in listed] == [
        (number, sha, "topic", "deployer")]
    assert [s["state"] for s in statuses] == ["success", "in_progress"]  # newest first
    assert client.post(f"{deployments}/{number}/statuses", {"state": "done"}).status_code == 422
    assert client.post(deployments, {"ref": "nope"}).status_code == 422


def test_a_successful_staging_deployment_retires_the_previous_one(github: FakeGitHub,
                                                                   client: Client) -> None:
    old = github.add_deployment(REPO, "a" * 40, "staging", creator="ci")
    new = github.add_deployment(REPO, "b" * 40, "staging", creator="ci")
    prod = github.add_deployment(REPO, "a" * 40, "production", creator="ci")
    for deployment in (old, prod, new):
        github.add_deployment_status(REPO, deployment, "success", creator="ci")

    def state(deployment: int) -> str:
        return str(client.get(f"/repos/{REPO}/deployments/{deployment}/statuses",
                              per_page=1).json()[0]["state"])

    assert (state(old), state(new), state(prod)) == ("inactive", "success", "success")


def test_deployments_list_newest_first_and_filter(github: FakeGitHub, client: Client) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ids = [github.add_deployment(REPO, "c" * 40, env, creator="ci",
                                 created_at=start + timedelta(hours=n))
           for n, env in enumerate(["production", "staging", "production"])]

    listed = client.get(f"/repos/{REPO}/deployments", environment="production").json()

    assert [d["id"] for d in listed] == [ids[2], ids[0]]
    assert listed[0]["created_at"] == "2026-11-01T02:00:00Z"
    assert client.get(f"/repos/{REPO}/deployments/{ids[1]}/statuses").json() == []


def test_rate_limits_secondary_primary_and_a_real_budget(github: FakeGitHub,
                                                         client: Client) -> None:
    reset = datetime(2030, 1, 1, tzinfo=UTC)
    github.secondary_rate_limit(r"/user$", retry_after=30)
    github.primary_rate_limit(r"/user$", reset_at=reset)

    secondary, primary = client.get("/user"), client.get("/user")

    assert (secondary.status_code, secondary.headers["Retry-After"]) == (403, "30")
    assert "secondary rate limit" in secondary.json()["message"]
    assert (primary.status_code, primary.headers["x-ratelimit-remaining"]) == (403, "0")
    assert primary.headers["x-ratelimit-reset"] == str(int(reset.timestamp()))
    assert [r.fault for r in github.requests] == ["fail", "fail"]

    github.set_rate_limit(2, reset_at=reset)
    answers = [client.get("/user") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 403]
    assert answers[1].headers["x-ratelimit-remaining"] == "0"
    assert answers[2].json()["message"].startswith("API rate limit exceeded")


def test_stall_malformed_and_method_faults(github: FakeGitHub, client: Client) -> None:
    github.stall(r"/user$", seconds=30)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.session.get(f"{github.url}/user", timeout=0.3)
    assert time.monotonic() - started < 5

    github.malformed(r"/user$")
    with pytest.raises(ValueError):
        client.get("/user").json()
    github.fail(r"/deployments$", 502, method="POST")
    assert client.get(f"/repos/{REPO}/deployments").ok
    assert client.post(f"/repos/{REPO}/deployments", {"ref": "main"}).status_code == 502
    assert github.count("POST", r"/deployments$") == 1


def test_an_enterprise_prefix_and_closing() -> None:
    with FakeGitHub(prefix="/api/v3") as fake:
        token = fake.add_token("deployer")
        headers = {"Authorization": f"Bearer {token}"}
        assert fake.url.endswith("/api/v3")
        assert requests.get(f"{fake.url}/user", headers=headers, timeout=5).ok
        assert requests.get(f"{fake.host_url}/user", headers=headers,
                            timeout=5).status_code == 404
        url = fake.url
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/user", timeout=1)
