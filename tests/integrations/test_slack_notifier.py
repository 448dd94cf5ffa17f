"""Slack direct messages through `slack_sdk`, against a local Slack Web API over HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from config.loader import load_config
from config.settings import PROJECT_ROOT
from domain.models import Notice, Person, Roster
from integrations.ports import NoticeUnavailable, NoticeUndelivered
from integrations.slack_notifier import SlackNotifier
from tests.fakes.slack_server import FakeSlack

TOKEN = "xoxb-witness-5f2a9c"
"""The bot token: it must appear in no error and no log line."""
ROSTER = load_config(PROJECT_ROOT / "config").roster
ERIN = ROSTER.people["erin"].slack_id
CODE_NOTICE = Notice(to="erin", kind="approval-code", change_id="CHG-101",
                     subject="CHG-101: your review decision as engineering_lead is needed",
                     body="Paginate <the> orders & <!channel>\ncode: K7QF-M2XP\nrun: r-1",
                     link="http://127.0.0.1:4200/runs/flow-run/r-1")


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(TOKEN) as fake:
        for person in ROSTER.people.values():
            if person.slack_id:
                fake.member(person.slack_id)
        yield fake


def notifier(slack: FakeSlack, token: str = TOKEN, roster: Roster = ROSTER,
             timeout: float = 5) -> SlackNotifier:
    return SlackNotifier(roster, SecretStr(token), base_url=slack.url, timeout_seconds=timeout)


def test_a_notice_is_a_direct_message_to_the_persons_member_id(
        slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert ERIN is not None
    before = len(slack.messages_to(ERIN))
    notifier(slack).notify(CODE_NOTICE)
    [posted] = slack.messages_to(ERIN)[before:]
    assert posted.channel == "D" + ERIN[1:]  # the DM conversation with the bot
    assert posted.text.startswith("*CHG-101: your review decision as engineering_lead is "
                                  "needed*\n")
    # The ticket's words are text: no mention of the channel, no link of theirs.
    assert "Paginate &lt;the&gt; orders &amp; &lt;!channel&gt;" in posted.text
    assert "code: K7QF-M2XP" in posted.text
    assert posted.text.endswith("<http://127.0.0.1:4200/runs/flow-run/r-1|Open in Prefect>")
    assert TOKEN not in caplog.text and "K7QF" not in caplog.text


def test_refusals_name_the_fix_and_are_not_retried(slack: FakeSlack) -> None:
    unknown = Roster(people={"zed": Person(id="zed", name="Zed", email="zed@example.com",
                                           slack_id="U0NOBODY")})
    with pytest.raises(NoticeUndelivered, match="HTTP 200, channel_not_found .*check the "
                                                "person's slack_id") as raised:
        notifier(slack, roster=unknown).notify(CODE_NOTICE.model_copy(update={"to": "zed"}))
    assert not isinstance(raised.value, NoticeUnavailable)
    with pytest.raises(NoticeUndelivered, match="invalid_auth .*check CHANGEFLOW_SLACK_TOKEN"
                       ) as raised:
        notifier(slack, token="xoxb-wrong-" + TOKEN).notify(CODE_NOTICE)
    assert not isinstance(raised.value, NoticeUnavailable)
    assert TOKEN not in str(raised.value) and "K7QF" not in str(raised.value)
    with pytest.raises(NoticeUndelivered, match="'alice' has no slack_id in roster.yaml"):
        no_id = ROSTER.people["alice"].model_copy(update={"slack_id": None})
        notifier(slack, roster=Roster(people={"alice": no_id})).notify(
            CODE_NOTICE.model_copy(update={"to": "alice"}))


def test_rate_limits_outages_and_garbled_answers_are_worth_retrying(slack: FakeSlack) -> None:
    slack.rate_limit(retry_after=7)
    with pytest.raises(NoticeUnavailable, match="HTTP 429, ratelimited") as raised:
        notifier(slack).notify(CODE_NOTICE)
    assert raised.value.retry_after == 7
    slack.status(503)
    with pytest.raises(NoticeUnavailable, match="HTTP 503"):
        notifier(slack).notify(CODE_NOTICE)
    slack.garble()
    with pytest.raises(NoticeUnavailable, match="an answer that is not Slack's"):
        notifier(slack).notify(CODE_NOTICE)
    slack.error("internal_error")
    with pytest.raises(NoticeUnavailable, match="internal_error"):
        notifier(slack).notify(CODE_NOTICE)


def test_a_stalled_slack_times_out(slack: FakeSlack) -> None:
    slack.stall(5)
    with pytest.raises(NoticeUnavailable, match="cannot reach Slack at .* for the notice to "
                                                "erin: TimeoutError"):
        notifier(slack, timeout=1).notify(CODE_NOTICE)
