"""The Jira adapter against the local Jira, Cloud and Data Center, through the `jira` library."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import SecretStr

from config.jira import JiraApprovals, JiraMapping
from config.loader import load_config
from config.settings import PROJECT_ROOT
from domain.intake import validate_ticket
from domain.models import ChangeRequest, Decision, IncidentFacts
from integrations.jira_tickets import JiraChangeTickets, retry_after_seconds
from integrations.ports import TicketNotFound, TicketSystemError, TicketSystemUnavailable
from tests.fakes.jira_server import FakeJira
from tests.support.jira import JiraProject, jira_project, with_evidence_values

CONFIG = load_config(PROJECT_ROOT / "config")


@pytest.fixture(params=["cloud", "datacenter"])
def project(request: pytest.FixtureRequest) -> Iterator[JiraProject]:
    with FakeJira(mode=request.param) as fake:
        yield jira_project(fake, with_evidence_values(CONFIG.jira or JiraMapping()))


def connect(project: JiraProject, mapping: JiraMapping | None = None,
            token: str | None = None) -> JiraChangeTickets:
    s = project.settings()
    return JiraChangeTickets(s["jira_url"], mapping or project.mapping, CONFIG.roster,
                             SecretStr(token or s["jira_token"]), email=s["jira_email"],
                             timeout_seconds=1)


def test_a_complete_jira_ticket_becomes_a_valid_change(project: JiraProject) -> None:
    key = project.create_change("CHG-101")
    jira = connect(project)
    assert jira.cloud is (project.fake.mode == "cloud")
    ticket = jira.get(key)
    assert ticket.status == "Open"
    assert ticket.fields["author"] == "alice"
    assert ticket.fields["rollback_plan"]["time_estimate_minutes"] == 10
    assert ticket.fields["evidence"]["code_review"]["reviewers"] == ["erin", "bob"]
    assert ticket.fields["changed_paths"] == ["src/orders/list.py", "tests/orders/test_list.py"]
    change = validate_ticket(ticket, CONFIG.policy, CONFIG.roster, CONFIG.services)
    assert isinstance(change, ChangeRequest), change
    assert (change.category, change.version, change.rollback_plan.owner) == (
        "normal", "1.1.0", "alice")


def test_a_person_not_in_the_roster_stays_unknown_and_intake_says_so(
        project: JiraProject) -> None:
    stranger = project.fake.add_user("Sid Stranger")
    key = project.fake.create_issue("CHG", project.jira_fields(
        {"summary": "x", "category": "normal"}), as_user=stranger)
    ticket = connect(project).get(key)
    assert ticket.fields["author"] == f"jira:{stranger.id}"
    problems = validate_ticket(ticket, CONFIG.policy, CONFIG.roster, CONFIG.services)
    assert f"author: 'jira:{stranger.id}' is not in the roster; use a roster id" in problems


def test_bad_credentials_fail_at_start_without_the_token(project: JiraProject) -> None:
    with pytest.raises(TicketSystemError, match="refused the credentials") as refused:
        connect(project, token="wrong-token-1234")
    assert "wrong-token-1234" not in str(refused.value)
    assert project.fake.count(path_regex="myself") == 1


@pytest.mark.parametrize(("change", "message"), [
    ("rename", "fields.scope: Jira has no field named 'Scope'"),
    ("duplicate", "fields.scope: 2 Jira fields are named 'Scope'"),
])
def test_a_field_missing_or_ambiguous_in_jira_fails_at_start_naming_it(
        project: JiraProject, change: str, message: str) -> None:
    if change == "rename":
        project.fake.rename_field("Scope", "Scope of change")
    else:
        project.fake.add_field("Scope")
    with pytest.raises(TicketSystemError, match=message):
        connect(project)


def test_search_follows_every_page_in_pages_of_100(project: JiraProject) -> None:
    for i in range(250):
        project.fake.create_issue("CHG", {"summary": f"change {i}"})
    jira = connect(project)
    before = jira.requests
    found = jira.search()
    assert [t.key for t in found][:3] == ["CHG-1", "CHG-2", "CHG-3"] and len(found) == 250
    searches = project.fake.count(path_regex=r"/search")
    assert searches == 3  # 100 + 100 + 50, nothing else
    assert jira.requests - before <= searches + 1  # the library may re-read the field list


def test_unknown_ticket_is_not_found(project: JiraProject) -> None:
    with pytest.raises(TicketNotFound):
        connect(project).get("CHG-999")


@pytest.mark.parametrize("key", ["../../rest/api/2/myself", "CHG-1?expand=all", "CHG-1/comment",
                                 "CHG-1#x", "CHG 1", "CHG-0", "-1", "CHG-", ""])
def test_a_key_that_is_not_a_jira_key_makes_no_request(project: JiraProject, key: str) -> None:
    jira = connect(project)
    before = jira.requests
    for call in (lambda: jira.get(key), lambda: jira.add_comment(key, "x"),
                 lambda: jira.comments(key), lambda: jira.transition(key, "closed"),
                 lambda: jira.add_link(key, "https://ci.example.com/1", "CI"),
                 lambda: jira.approvals(key), lambda: jira.ready_revision(key, "Ready"),
                 lambda: jira.open_incident(key, "INC-1", "x", 3)):
        with pytest.raises(TicketNotFound, match="is not a Jira issue key"):
            call()
    assert jira.requests == before


def test_transitions_go_by_configured_status_and_repeat_safely(project: JiraProject) -> None:
    key = project.create_change("CHG-101")
    jira = connect(project)
    jira.transition(key, "needs information")
    assert jira.get(key).status == "Needs information"
    posts = project.fake.count("POST", r"/transitions")
    jira.transition(key, "needs information")  # already there: nothing is sent
    assert project.fake.count("POST", r"/transitions") == posts == 1


def test_a_transition_not_open_names_what_is(project: JiraProject) -> None:
    key = project.create_change("CHG-101")
    project.fake.set_workflow("CHG", [("Approve", "Open", "Lead approved", None)],
                              initial="Open")
    with pytest.raises(TicketSystemError, match=r"cannot move from 'Open' to 'Closed' "
                       r"\(transitions open to changeflow: Approve -> Lead approved\)"):
        connect(project).transition(key, "closed")


def test_comments_and_links_are_written_once(project: JiraProject) -> None:
    key = project.create_change("CHG-101")
    jira = connect(project)
    jira.add_comment(key, "hello")
    assert jira.comments(key) == ["hello"]
    for _ in range(2):
        jira.add_link(key, "https://ci.example.com/run/1", "CI run")
    assert project.fake.count("POST", r"/remotelink") == 1


def test_an_incident_is_created_linked_and_never_twice(project: JiraProject) -> None:
    key = project.create_change("CHG-103")
    jira = connect(project)
    first = jira.open_incident(key, "INC-CHG-1-1", "rolled back", 3)
    again = jira.open_incident(key, "INC-CHG-1-1", "rolled back", 3)
    assert first == again and first.startswith("INC-")
    assert project.fake.count("POST", r"/rest/api/2/issue$") == 1
    links = project.fake.issue(key)["fields"]["issuelinks"]
    assert [link.get("inwardIssue", link.get("outwardIssue"))["key"] for link in links] == [
        first]


def test_an_incident_whose_create_answer_was_lost_is_found_not_duplicated(
        project: JiraProject) -> None:
    key = project.create_change("CHG-103")
    jira = connect(project)
    project.fake.stall(r"/rest/api/2/issue$", 2, method="POST")  # created, answer lost
    with pytest.raises(TicketSystemUnavailable, match="did not answer"):
        jira.open_incident(key, "INC-CHG-1-1", "rolled back", 3)
    incident = jira.open_incident(key, "INC-CHG-1-1", "rolled back", 3)
    assert project.fake.count("POST", r"/rest/api/2/issue$") == 1
    assert incident.startswith("INC-")


def test_a_400_surfaces_with_jiras_message_and_is_not_retryable(project: JiraProject) -> None:
    key = project.create_change("CHG-101")
    project.fake.fail(r"/comment", status=400, body={
        "errorMessages": [], "errors": {"comment": "Comment body can not be empty!"}})
    with pytest.raises(TicketSystemError, match="comment: Comment body can not be empty!") \
            as refused:
        connect(project).add_comment(key, "x")
    assert not isinstance(refused.value, TicketSystemUnavailable)


@pytest.mark.parametrize(("status", "retry_after", "expected"), [
    (429, "7", 7.0), (503, None, None), (502, "2", 2.0)])
def test_transient_answers_are_retryable_with_jiras_wait(
        project: JiraProject, status: int, retry_after: str | None,
        expected: float | None) -> None:
    key = project.create_change("CHG-101")
    jira = connect(project)
    project.fake.fail(r"/issue/CHG-1$", status=status, retry_after=retry_after)
    with pytest.raises(TicketSystemUnavailable, match=f"answered {status}") as busy:
        jira.get(key)
    assert busy.value.retry_after == expected
    assert jira.get(key).key == key  # the next try goes through


def test_a_malformed_answer_and_a_stall_are_retryable(project: JiraProject) -> None:
    key = project.create_change("CHG-101")
    jira = connect(project)
    project.fake.malformed(r"/issue/CHG-1$")
    with pytest.raises(TicketSystemUnavailable, match="malformed"):
        jira.get(key)
    project.fake.stall(r"/issue/CHG-1$", 1.5)
    with pytest.raises(TicketSystemUnavailable, match="ReadTimeout"):
        jira.get(key)


def test_an_issue_whose_own_fields_are_garbled_is_a_retryable_malformed_answer(
        project: JiraProject) -> None:
    jira = connect(project)
    for fields in ({"status": "Open"}, {"labels": 7}, {"components": 5}):
        with pytest.raises(TicketSystemUnavailable, match="malformed issue CHG-9"):
            jira.to_ticket({"key": "CHG-9", "fields": fields})


GOOD_INCIDENT = {"project": {"key": "INC"}, "issuetype": {"name": "Incident"},
                 "status": {"statusCategory": {"key": "indeterminate"}},
                 "priority": {"name": "Highest"}, "summary": "Checkout down"}


@pytest.mark.parametrize("fields", [
    {**GOOD_INCIDENT, "status": None},  # no status: never assumed open
    {**GOOD_INCIDENT, "status": {"statusCategory": {"key": "maybe"}}},
    {**GOOD_INCIDENT, "status": "Open"},
    {**GOOD_INCIDENT, "priority": "Highest"},
    {**GOOD_INCIDENT, "project": None},
    {k: v for k, v in GOOD_INCIDENT.items() if k != "issuetype"},
])
def test_a_garbled_incident_is_a_named_malformed_answer_never_an_open_p1(
        project: JiraProject, fields: dict[str, Any]) -> None:
    incident = project.fake.create_issue("INC", {"summary": "Checkout down",
                                                 "priority": "Highest"})
    jira = connect(project)
    assert jira.incident(incident) == IncidentFacts(key=incident, source="ticket_system",
                                                    priority=1, open=True,
                                                    summary="Checkout down")
    project.fake.fail(rf"/issue/{incident}$", 200, body={"key": incident, "fields": fields})
    with pytest.raises(TicketSystemUnavailable, match=f"malformed incident {incident}"):
        jira.incident(incident)


def test_retry_after_in_both_forms() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("30", now) == 30.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True),
                               now) == 90.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True),
                               now) == 0.0
    assert retry_after_seconds("100000", now) == 300.0  # capped
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_jsm_approvals_are_read_with_who_and_when(project: JiraProject) -> None:
    mapping = project.mapping.model_copy(update={"approvals": JiraApprovals(
        mode="jsm", names={"engineering_lead": "Lead approval", "qa": "QA approval"})})
    key = project.create_change("CHG-101")
    fake, users = project.fake, project.users
    lead = fake.add_approval(key, "Lead approval", [users["erin"]])
    fake.add_approval(key, "QA approval", [users["quinn"]])  # still pending
    fake.answer_approval(key, lead, users["erin"], "approve")
    (given,) = connect(project, mapping).approvals(key)
    assert (given.role, given.person_id, given.decision, given.source) == (
        "engineering_lead", "erin", Decision.APPROVE, "jira-jsm")
    assert abs((given.at - datetime.now(UTC)).total_seconds()) < 60


def test_a_jsm_approval_is_known_by_its_id_and_the_approvers_account(
        project: JiraProject) -> None:
    """Renaming the approver (display name, e-mail) does not make it another approval."""
    mapping = project.mapping.model_copy(update={"approvals": JiraApprovals(
        mode="jsm", names={"engineering_lead": "Lead approval"})})
    key = project.create_change("CHG-101")
    fake, erin = project.fake, project.users["erin"]
    lead = fake.add_approval(key, "Lead approval", [erin])
    fake.answer_approval(key, lead, erin, "approve")
    jira = connect(project, mapping)
    (before,) = jira.approvals(key)
    fake.rename_user(erin, "Erin Married-Name", "erin.mn@example.com")
    (after,) = jira.approvals(key)
    assert before.ref == after.ref == f"jsm:{lead}:{erin.id}"
    assert before.account == after.account == erin.id
    assert "@" not in before.ref and "avatar" not in before.ref


def test_transition_approvals_are_attributed_to_the_changelog_author(
        project: JiraProject) -> None:
    mapping = project.mapping.model_copy(update={"approvals": JiraApprovals(
        mode="transition", names={"engineering_lead": "Lead approved"})})
    key = project.create_change("CHG-101")
    project.fake.transition(key, "To Lead approved", project.users["erin"])
    (given,) = connect(project, mapping).approvals(key)
    assert (given.role, given.person_id, given.source) == (
        "engineering_lead", "erin", "jira-transition")


def test_readiness_revision_is_the_changelog_entry(project: JiraProject) -> None:
    key = project.create_change("CHG-101")
    jira = connect(project)
    assert jira.ready_revision(key, "Ready for change") == "created"
    project.fake.transition(key, "To Ready for change", project.users["alice"])
    first = jira.ready_revision(key, "Ready for change")
    project.fake.transition(key, "To Open", project.users["alice"])
    project.fake.transition(key, "To Ready for change", project.users["alice"])
    second = jira.ready_revision(key, "Ready for change")
    assert first != "created" and second not in (first, "created")
