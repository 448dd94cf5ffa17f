"""The fake Jira, always driven through the real `jira` client over 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests
from jira import JIRA, JIRAError
from jira.resources import Issue

from tests.fakes.jira_server import FakeJira, FakeJiraError, FakeUser, epoch_millis

Connect = Callable[..., JIRA]
JIRA_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


@pytest.fixture(params=["cloud", "datacenter"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeJira]:
    with FakeJira(mode=request.param) as jira_fake:
        yield jira_fake


@pytest.fixture
def cloud() -> Iterator[FakeJira]:
    with FakeJira(mode="cloud") as jira_fake:
        yield jira_fake


@pytest.fixture
def dc() -> Iterator[FakeJira]:
    with FakeJira(mode="datacenter") as jira_fake:
        yield jira_fake


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Log in to a fake as a user, the way changeflow does; every client is closed after."""
    clients: list[JIRA] = []

    def _connect(jira_fake: FakeJira, user: FakeUser, **options: Any) -> JIRA:
        options = {"max_retries": 0, "timeout": 5, **options}
        if jira_fake.mode == "cloud":
            client = JIRA(server=jira_fake.url, basic_auth=(user.email, user.token), **options)
        else:
            client = JIRA(server=jira_fake.url, token_auth=user.token, **options)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()


def ident(jira_fake: FakeJira) -> str:
    return "accountId" if jira_fake.mode == "cloud" else "name"


def keys(issues: list[Issue]) -> list[str]:
    return [issue.key for issue in issues]


def create_changes(jira_fake: FakeJira, n: int) -> None:
    for i in range(n):
        jira_fake.create_issue("CHG", {"summary": f"Change {i + 1}"})


# --- connecting --------------------------------------------------------------------------


def test_server_info_reports_the_deployment_type(fake: FakeJira, connect: Connect) -> None:
    client = connect(fake, fake.add_user("Alice Admin"))
    expected = "Cloud" if fake.mode == "cloud" else "Server"

    assert client.deploymentType == expected
    assert client.server_info()["serverTitle"] == "Fake Jira"
    anonymous = requests.get(f"{fake.url}/rest/api/2/serverInfo", timeout=5)
    assert anonymous.status_code == 200
    assert anonymous.json()["deploymentType"] == expected
    assert fake.requests[-1].user is None


def test_myself_accepts_good_credentials_and_refuses_bad_ones(fake: FakeJira,
                                                              connect: Connect) -> None:
    alice = fake.add_user("Alice Admin")
    assert connect(fake, alice).myself()[ident(fake)] == alice.id

    impostor = connect(fake, dataclasses.replace(alice, token="not-the-token"))
    with pytest.raises(JIRAError) as refused:
        impostor.myself()
    assert refused.value.status_code == 401
    assert "not authenticated" in str(refused.value.text)
    assert fake.requests[-1].user is None
    assert alice.token not in repr(fake.requests)


def test_each_mode_accepts_only_its_own_auth_scheme(cloud: FakeJira, dc: FakeJira) -> None:
    on_cloud, on_dc = cloud.add_user("Alice Admin"), dc.add_user("Alice Admin")
    pat_on_cloud = JIRA(server=cloud.url, token_auth=on_cloud.token, max_retries=0, timeout=5)
    basic_on_dc = JIRA(server=dc.url, basic_auth=(on_dc.email, on_dc.token), max_retries=0,
                       timeout=5)
    try:
        for client in (pat_on_cloud, basic_on_dc):
            with pytest.raises(JIRAError) as refused:
                client.myself()
            assert refused.value.status_code == 401
    finally:
        pat_on_cloud.close()
        basic_on_dc.close()


def test_fields_list_custom_fields_renamed_and_duplicated(cloud: FakeJira,
                                                          connect: Connect) -> None:
    risk = cloud.add_field("Risk level")
    twin = cloud.add_field("Risk level", "number")
    cloud.rename_field(risk, "Risk")

    by_id = {f["id"]: f for f in connect(cloud, cloud.add_user("Alice Admin")).fields()}

    assert by_id[risk]["name"] == "Risk"
    assert by_id[risk]["clauseNames"] == [f"cf[{risk.removeprefix('customfield_')}]", "Risk"]
    assert by_id[risk]["custom"] is True and by_id[risk]["schema"]["type"] == "string"
    assert by_id[twin]["name"] == "Risk level" and by_id[twin]["schema"]["type"] == "number"
    assert by_id["summary"]["custom"] is False
    assert set(by_id["summary"]) == {"id", "key", "name", "custom", "orderable", "navigable",
                                     "searchable", "clauseNames", "schema"}


# --- searching ---------------------------------------------------------------------------


def test_cloud_search_follows_next_page_tokens(cloud: FakeJira, connect: Connect) -> None:
    create_changes(cloud, 250)
    client = connect(cloud, cloud.add_user("Alice Admin"))
    jql = "project = CHG ORDER BY key ASC"

    everything = client.search_issues(jql, maxResults=0, fields="summary")

    assert keys(everything) == [f"CHG-{n}" for n in range(1, 251)]
    pages = [r for r in cloud.requests if r.path == "/rest/api/2/search/jql"]
    assert [r.query["maxResults"] for r in pages] == ["100", "100", "100"]
    assert ["nextPageToken" in r.query for r in pages] == [False, True, True]

    first = client.search_issues(jql, maxResults=100, fields="summary")
    assert len(first) == 100 and first.nextPageToken
    rest = client.enhanced_search_issues(jql, nextPageToken=first.nextPageToken, maxResults=0,
                                         fields="summary")
    assert keys(rest) == [f"CHG-{n}" for n in range(101, 251)]
    assert rest.nextPageToken is None

    with pytest.raises(JIRAError) as gone:
        client._get_json("search", params={"jql": jql})
    assert gone.value.status_code == 410


def test_dc_search_pages_with_start_at_and_total(dc: FakeJira, connect: Connect) -> None:
    create_changes(dc, 250)
    client = connect(dc, dc.add_user("Alice Admin"))
    jql = "project = CHG ORDER BY key ASC"

    everything = client.search_issues(jql, maxResults=False, fields="summary")

    assert keys(everything) == [f"CHG-{n}" for n in range(1, 251)]
    assert everything.total == 250
    starts = [r.query.get("startAt", "0") for r in dc.requests if r.path == "/rest/api/2/search"]
    assert starts == ["0", "100", "200"]

    tail = client.search_issues(jql, startAt=200, maxResults=100)
    assert keys(tail) == [f"CHG-{n}" for n in range(201, 251)] and tail.total == 250
    capped = client.search_issues(jql, maxResults=5000, fields="", json_result=True)
    assert capped["maxResults"] == 1000

    with pytest.raises(JIRAError) as missing:
        client._get_json("search/jql", params={"jql": jql})
    assert missing.value.status_code == 404


def test_search_filters_by_updated_status_and_key(fake: FakeJira, connect: Connect) -> None:
    create_changes(fake, 3)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    fake.set_updated("CHG-1", now - timedelta(days=10))
    fake.set_updated("CHG-2", now - timedelta(days=5))
    since = now - timedelta(days=5)
    client = connect(fake, fake.add_user("Alice Admin"))

    def found(jql: str) -> list[str]:
        return keys(client.search_issues(jql, fields="updated"))

    assert found(f"updated >= {epoch_millis(since)} ORDER BY updated ASC") == ["CHG-2", "CHG-3"]
    assert found(f'updated >= "{since:%Y-%m-%d %H:%M}" ORDER BY updated DESC') == [
        "CHG-3", "CHG-2"]
    assert found(f"project = CHG AND updated > {epoch_millis(since)}") == ["CHG-3"]
    assert found('project = CHG AND status in ("Open", Done) AND key in (CHG-1, chg-3) '
                 "ORDER BY key DESC") == ["CHG-3", "CHG-1"]
    assert found('status = "In Progress"') == []


def test_search_by_post_reads_the_json_body(fake: FakeJira, connect: Connect) -> None:
    risk = fake.add_field("Risk")
    create_changes(fake, 3)
    client = connect(fake, fake.add_user("Alice Admin"))

    found = client.search_issues("project = CHG ORDER BY key DESC", fields=["summary", "Risk"],
                                 use_post=True)

    assert keys(found) == ["CHG-3", "CHG-2", "CHG-1"]
    # The fake answers ids; the library adds the name it was given as an alias of the id.
    assert set(found[0].raw["fields"]) == {"summary", risk, "Risk"}
    assert fake.requests[-1].method == "POST" and fake.requests[-1].body["fields"] == [
        "summary", risk]


def test_cloud_client_without_server_info_hits_the_removed_search(cloud: FakeJira) -> None:
    alice = cloud.add_user("Alice Admin")
    client = JIRA(server=cloud.url, basic_auth=(alice.email, alice.token),
                  get_server_info=False, max_retries=0, timeout=5)
    try:
        with pytest.raises(JIRAError) as gone:
            client.search_issues("project = CHG")
    finally:
        client.close()
    assert gone.value.status_code == 410 and "has been removed" in str(gone.value.text)


def test_empty_fields_returns_ids_only(fake: FakeJira, connect: Connect) -> None:
    create_changes(fake, 2)
    client = connect(fake, fake.add_user("Alice Admin"))

    issues = client.search_issues("project = CHG ORDER BY key ASC", fields="")

    assert [sorted(i.raw) for i in issues] == [["expand", "id", "key", "self"]] * 2
    assert fake.requests[-1].query["fields"] == ""


@pytest.mark.parametrize(("jql", "message"), [
    ("project = CHG OR project = INC", "Error in the JQL Query"),
    ("summary ~ deploy", "Error in the JQL Query"),
    ("project = CHG AND (status = Open)", "Error in the JQL Query"),
    ("updated >= -1d", "is invalid"),
    ("project = NOPE", "does not exist for the field 'project'"),
    ("status = Nonexistent", "does not exist for the field 'status'"),
])
def test_unsupported_or_invalid_jql_is_refused(fake: FakeJira, connect: Connect, jql: str,
                                               message: str) -> None:
    client = connect(fake, fake.add_user("Alice Admin"))

    with pytest.raises(JIRAError) as refused:
        client.search_issues(jql)

    assert refused.value.status_code == 400
    assert message in str(refused.value.text)


def test_cloud_refuses_unbounded_jql(cloud: FakeJira, connect: Connect) -> None:
    with pytest.raises(JIRAError, match="Unbounded JQL"):
        connect(cloud, cloud.add_user("Alice Admin")).search_issues("ORDER BY key")


# --- issues --------------------------------------------------------------------------------


def test_get_issue_with_custom_fields(fake: FakeJira, connect: Connect) -> None:
    risk, score = fake.add_field("Risk"), fake.add_field("Score", "number")
    alice = fake.add_user("Alice Admin")
    key = fake.create_issue("CHG", {"summary": "Deploy 2.1.0", "Risk": "high", "Score": 7,
                                    "labels": ["prod"]}, as_user=alice)
    client = connect(fake, alice)

    issue = client.issue(key)

    assert getattr(issue.fields, risk) == "high" and getattr(issue.fields, score) == 7
    assert issue.fields.labels == ["prod"]
    assert issue.fields.status.name == "Open" and issue.fields.issuetype.name == "Change"
    assert issue.fields.reporter.displayName == "Alice Admin"
    assert JIRA_TIME.match(issue.fields.updated)
    assert set(client.issue(key, fields="summary,Risk").raw["fields"]) == {"summary", risk}

    with pytest.raises(JIRAError) as missing:
        client.issue("CHG-999")
    assert missing.value.status_code == 404
    assert missing.value.text == "Issue does not exist or you do not have permission to see it."


def test_create_issue_answers_201_and_400_with_field_errors(fake: FakeJira,
                                                            connect: Connect) -> None:
    risk = fake.add_field("Risk")
    alice = fake.add_user("Alice Admin")
    client = connect(fake, alice)

    created = client.create_issue(fields={"project": {"key": "CHG"},
                                          "issuetype": {"name": "Change"},
                                          "summary": "Rotate keys", risk: "low"})

    assert created.key == "CHG-1" and getattr(created.fields, risk) == "low"
    assert created.fields.reporter.displayName == "Alice Admin"
    assert fake.count("POST", r"/issue$") == 1 and fake.requests[-2].status == 201

    fake.clear_requests()
    by_name = client.create_issue(project="INC", issuetype="Incident", summary="Outage")
    assert by_name.key == "INC-1"
    assert [(r.method, r.path, r.query) for r in fake.requests] == [
        ("GET", "/rest/api/2/project/INC", {}),
        ("GET", "/rest/api/2/project/10001", {"expand": "issueTypes"}),
        ("POST", "/rest/api/2/issue", {}),
        ("GET", "/rest/api/2/issue/INC-1", {})]

    with pytest.raises(JIRAError) as no_summary:
        client.create_issue(fields={"project": {"key": "CHG"}, "issuetype": {"id": "10001"}})
    assert no_summary.value.status_code == 400
    assert no_summary.value.text == "You must specify a summary of the issue."
    with pytest.raises(JIRAError, match="customfield_19999' cannot be set"):
        client.create_issue(fields={"project": {"key": "CHG"}, "issuetype": {"name": "Change"},
                                    "summary": "x", "customfield_19999": "y"})


def test_editing_fields_records_changelog_items(fake: FakeJira, connect: Connect) -> None:
    risk = fake.add_field("Risk")
    alice = fake.add_user("Alice Admin")
    key = fake.create_issue("CHG", {"summary": "Old", "Risk": "low"})

    connect(fake, alice).issue(key).update(fields={"summary": "New", risk: "high"})

    [history] = fake.issue(key, expand="changelog")["changelog"]["histories"]
    assert history["author"][ident(fake)] == alice.id
    assert [(i["field"], i["fieldtype"], i["fromString"], i["toString"])
            for i in history["items"]] == [("summary", "jira", "Old", "New"),
                                           ("Risk", "custom", "low", "high")]


def test_changelog_pages_and_names_the_author_of_each_transition(fake: FakeJira,
                                                                 connect: Connect) -> None:
    alice, bob = fake.add_user("Alice Requester"), fake.add_user("Bob Approver")
    fake.set_workflow("CHG", [("Submit", "Draft", "Review", None),
                              ("Approve", "Review", "Approved", [bob])])
    key = fake.create_issue("CHG", {"summary": "Deploy"})
    connect(fake, alice).transition_issue(key, "Submit")
    connect(fake, bob).transition_issue(key, "Approve")
    client = connect(fake, alice)

    first = client._get_json(f"issue/{key}/changelog", params={"maxResults": 1})
    second = client._get_json(f"issue/{key}/changelog", params={"startAt": 1, "maxResults": 1})

    assert (first["total"], first["isLast"], second["isLast"]) == (2, False, True)
    assert first["nextPage"].endswith(f"/issue/{key}/changelog?maxResults=1&startAt=1")
    [approval] = second["values"]
    assert approval["author"][ident(fake)] == bob.id
    assert JIRA_TIME.match(approval["created"])
    assert approval["items"] == [{"field": "status", "fieldtype": "jira", "fieldId": "status",
                                  "from": approval["items"][0]["from"], "fromString": "Review",
                                  "to": approval["items"][0]["to"], "toString": "Approved"}]


def test_expand_changelog_is_truncated_on_cloud_only(fake: FakeJira, connect: Connect) -> None:
    key = fake.create_issue("CHG", {"summary": "v0"})
    for n in range(1, 106):
        fake.update_fields(key, {"summary": f"v{n}"})

    changelog = connect(fake, fake.add_user("Alice Admin")).issue(
        key, expand="changelog,renderedFields").raw["changelog"]

    assert changelog["total"] == 105
    expected = 100 if fake.mode == "cloud" else 105
    assert len(changelog["histories"]) == expected
    assert changelog["histories"][-1]["items"][0]["toString"] == "v105"


def test_transitions_are_open_only_to_allowed_users(fake: FakeJira, connect: Connect) -> None:
    alice, bob = fake.add_user("Alice Requester"), fake.add_user("Bob Approver")
    fake.set_workflow("CHG", [("Submit", "Draft", "Review", None),
                              ("Approve", "Review", "Approved", [bob]),
                              ("Reject", "Review", "Draft", [bob.id]),
                              ("Cancel", None, "Cancelled", None)])
    key = fake.create_issue("CHG", {"summary": "Deploy"})
    as_alice, as_bob = connect(fake, alice), connect(fake, bob)

    def names(client: JIRA) -> list[str]:
        return [t["name"] for t in client.transitions(key)]

    assert names(as_alice) == ["Submit", "Cancel"]
    as_alice.transition_issue(key, "Submit", comment="Ready for review")
    assert names(as_alice) == ["Cancel"] and names(as_bob) == ["Approve", "Reject", "Cancel"]
    approve = next(t for t in as_bob.transitions(key) if t["name"] == "Approve")
    assert approve["to"]["name"] == "Approved"

    with pytest.raises(JIRAError) as refused:
        as_alice.transition_issue(key, approve["id"])
    assert refused.value.status_code == 400 and "is not valid" in str(refused.value.text)
    with pytest.raises(FakeJiraError):
        fake.transition(key, "Approve", alice)

    as_bob.transition_issue(key, approve["id"])
    assert as_bob.issue(key).fields.status.name == "Approved"
    assert [c.body for c in as_bob.comments(key)] == ["Ready for review"]
    [by_bob] = [r for r in fake.requests if r.method == "POST" and r.user == bob.id]
    assert (by_bob.path, by_bob.status) == (f"/rest/api/2/issue/{key}/transitions", 204)
    assert by_bob.body == {"transition": {"id": int(approve["id"])}, "fields": {}}


def test_comments_are_added_and_listed(fake: FakeJira, connect: Connect) -> None:
    alice, bob = fake.add_user("Alice Admin"), fake.add_user("Bob Reviewer")
    key = fake.create_issue("CHG", {"summary": "Deploy"})
    client = connect(fake, alice)

    added = client.add_comment(key, "Deployed to staging")
    fake.add_comment(key, "Looks good", bob)

    assert added.author.displayName == "Alice Admin" and fake.requests[-1].status == 201
    assert [(c.author.displayName, c.body) for c in client.comments(key)] == [
        ("Alice Admin", "Deployed to staging"), ("Bob Reviewer", "Looks good")]
    assert client.issue(key).raw["fields"]["comment"]["total"] == 2


def test_issue_link_shows_on_both_issues(fake: FakeJira, connect: Connect) -> None:
    change = fake.create_issue("CHG", {"summary": "Deploy"})
    incident = fake.create_issue("INC", {"summary": "Outage"})
    client = connect(fake, fake.add_user("Alice Admin"))

    response = client.create_issue_link("Problem/Incident", change, incident)

    assert response.status_code == 201
    [on_change] = client.issue(change).fields.issuelinks
    [on_incident] = client.issue(incident).fields.issuelinks
    assert (on_change.type.outward, on_change.outwardIssue.key) == ("causes", incident)
    assert (on_incident.type.inward, on_incident.inwardIssue.key) == ("is caused by", change)
    assert fake.count("GET", r"/issueLinkType$") == 1 and fake.count("POST", r"/issueLink$") == 1


def test_remote_link_via_add_simple_link(fake: FakeJira, connect: Connect) -> None:
    key = fake.create_issue("CHG", {"summary": "Deploy"})
    client = connect(fake, fake.add_user("Alice Admin"))
    target = {"url": "https://ci.example.com/runs/42", "title": "CI run 42"}

    link = client.add_simple_link(key, target)

    assert link.id and fake.requests[-1].body == {"object": target}
    assert fake.count("GET", "applicationlinks") == 0
    [listed] = client.remote_links(key)
    assert listed.object.url == target["url"] and listed.id == link.id


# --- JSM approvals -------------------------------------------------------------------------


def test_jsm_approvals_are_read_and_answered(fake: FakeJira, connect: Connect) -> None:
    alice, bob, carol = (fake.add_user(n) for n in ("Alice Requester", "Bob Approver",
                                                    "Carol Approver"))
    key = fake.create_issue("CHG", {"summary": "Deploy"})
    approval_id = fake.add_approval(key, "Change approval", [bob, carol])
    base = "{server}/rest/servicedeskapi/{path}"
    url = f"{fake.url}/rest/servicedeskapi/request/{key}/approval/{approval_id}"
    as_alice, as_bob = connect(fake, alice), connect(fake, bob)

    [pending] = as_alice._get_json(f"request/{key}/approval", base=base)["values"]
    assert (pending["finalDecision"], pending["canAnswerApproval"]) == ("pending", False)
    assert [a["approver"][ident(fake)] for a in pending["approvers"]] == [bob.id, carol.id]
    assert as_bob._get_json(f"request/{key}/approval", base=base)["values"][0][
        "canAnswerApproval"] is True

    with pytest.raises(JIRAError) as not_an_approver:
        as_alice._session.post(url, data=json.dumps({"decision": "approve"}))
    assert not_an_approver.value.status_code == 403
    updated_before = as_alice.issue(key).fields.updated
    answered = as_bob._session.post(url, data=json.dumps({"decision": "approve"})).json()

    assert answered["finalDecision"] == "approved" and "completedDate" in answered
    assert [a["approverDecision"] for a in answered["approvers"]] == ["approved", "pending"]
    assert as_alice.issue(key).fields.updated > updated_before

    second = fake.add_approval(key, "CAB", [carol])
    fake.answer_approval(key, second, carol, "decline")
    page = as_alice._get_json(f"request/{key}/approval", base=base)
    assert [a["finalDecision"] for a in page["values"]] == ["approved", "declined"]
    assert page["isLastPage"] is True and page["size"] == 2


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["2", datetime(2026, 11, 26, 10, 0, 5, tzinfo=UTC)])
def test_429_carries_retry_after_in_either_form(cloud: FakeJira, connect: Connect,
                                               retry_after: str | datetime) -> None:
    cloud.create_issue("CHG", {"summary": "Deploy"})
    client = connect(cloud, cloud.add_user("Alice Admin"))
    cloud.fail(r"/search/jql$", 429, retry_after=retry_after)

    with pytest.raises(JIRAError) as limited:
        client.search_issues("project = CHG")

    assert limited.value.status_code == 429 and limited.value.response is not None
    header = limited.value.response.headers["Retry-After"]
    if isinstance(retry_after, datetime):
        assert header == "Thu, 26 Nov 2026 10:00:05 GMT"
        assert parsedate_to_datetime(header) == retry_after
    else:
        assert header == "2"
    assert (cloud.requests[-1].status, cloud.requests[-1].fault) == (429, "fail")
    assert keys(client.search_issues("project = CHG")) == ["CHG-1"]


def test_faults_match_method_and_are_consumed_in_order(fake: FakeJira, connect: Connect) -> None:
    key = fake.create_issue("CHG", {"summary": "Deploy"})
    client = connect(fake, fake.add_user("Alice Admin"))
    fake.fail(r"/comment$", 503, times=2, method="POST")
    fake.fail(r"/comment$", 429, method="POST")

    statuses = []
    for _ in range(3):
        with pytest.raises(JIRAError) as failed:
            client.add_comment(key, "Deployed")
        statuses.append(failed.value.status_code)
    client.comments(key)
    client.add_comment(key, "Deployed")

    assert statuses == [503, 503, 429]
    assert fake.count("POST", r"/comment$") == 4 and fake.count("GET", r"/comment$") == 1


def test_stall_beyond_the_client_timeout_raises_read_timeout(fake: FakeJira,
                                                             connect: Connect) -> None:
    client = connect(fake, fake.add_user("Alice Admin"), timeout=0.3)
    fake.stall(r"/myself$", seconds=30)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.myself()

    assert time.monotonic() - started < 5
    assert client.myself()  # the stall was consumed; the fake's exit wakes the stalled thread


def test_malformed_json_surfaces_as_a_value_error(fake: FakeJira, connect: Connect) -> None:
    key = fake.create_issue("CHG", {"summary": "Deploy"})
    client = connect(fake, fake.add_user("Alice Admin"))
    fake.malformed(r"/issue/CHG-1$")

    with pytest.raises(ValueError):
        client.issue(key)
    assert fake.requests[-1].fault == "malformed"


def test_injected_400_field_errors_surface_in_jira_error(fake: FakeJira,
                                                         connect: Connect) -> None:
    client = connect(fake, fake.add_user("Alice Admin"))
    fake.fail(r"/issue$", 400, method="POST", body={
        "errorMessages": [], "errors": {"customfield_10010": "Field 'x' cannot be set."}})

    with pytest.raises(JIRAError) as refused:
        client.create_issue(fields={"project": {"key": "CHG"}, "issuetype": {"name": "Change"},
                                    "summary": "Deploy"})

    assert (refused.value.status_code, refused.value.text) == (400, "Field 'x' cannot be set.")
    assert fake.count("GET", r"/issue/") == 0


# --- scale and lifecycle -------------------------------------------------------------------


def test_ten_thousand_issues_are_searched_in_pages_of_1000_on_dc(dc: FakeJira,
                                                                 connect: Connect) -> None:
    started = time.monotonic()
    create_changes(dc, 10_000)
    assert time.monotonic() - started < 5
    client = connect(dc, dc.add_user("Alice Admin"), default_batch_sizes={Issue: 5000})

    found = client.search_issues("project = CHG ORDER BY key ASC", maxResults=False,
                                 fields="summary")

    assert len(found) == 10_000 and found[-1].key == "CHG-10000"
    pages = [r.query for r in dc.requests if r.path == "/rest/api/2/search"]
    assert len(pages) == 10 and dc.count("GET", r"/search$") == 10
    assert [p["maxResults"] for p in pages[:2]] == ["5000", "1000"]  # DC caps pages at 1000
    assert time.monotonic() - started < 15


def test_the_fake_stops_listening_on_exit() -> None:
    with FakeJira(mode="datacenter") as jira_fake:
        url = jira_fake.url
        assert requests.get(f"{url}/rest/api/2/serverInfo", timeout=5).ok
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/rest/api/2/serverInfo", timeout=1)
    with pytest.raises(RuntimeError):
        _ = jira_fake.url
