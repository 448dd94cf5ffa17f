"""Routing notices: personal channels in order, the one retry layer, team channels, evidence.

Slack is a local Slack Web API over HTTP (`tests.fakes.slack_server`), the team channel
a real Prefect custom-webhook block posting to a local HTTP endpoint, and the fallback
the outbox file. Every delivery is read back from the change log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.settings import PREFECT_UI_URL, temporary_settings
from pydantic import SecretStr

from changeflow.stack import Stack, embedded_stack
from domain.models import Notice
from integrations.factory import Adapters
from integrations.outbox import read_outbox
from tasks.approvals import request_decision
from tasks.common import ChangeStopped
from tasks.forms import describe
from tasks.intake import submit_change
from tasks.notices import announce, notify, send
from tests.fakes.slack_server import FakeSlack, webhook_receiver

TOKEN = "xoxb-witness-81d07e"
"""The Slack token: it must appear in no event, no log line and no notice."""
BLOCK = "custom-webhook/changeflow-test"
ERIN = "U04ERIN003"


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(TOKEN) as fake:
        for member in ("U04ALICE01", "U04BOB0002", ERIN, "U04QUINN04", "U04CAROL05"):
            fake.member(member)
        yield fake


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    with webhook_receiver() as (url, received, answers):
        CustomWebhookNotificationBlock(
            name="changeflow", url=url,
            json_data={"text": "{{subject}}\n{{body}}"}).save(BLOCK.split("/")[1],
                                                               overwrite=True)
        yield received, answers


@pytest.fixture
def team(slack: FakeSlack, tmp_path: Path) -> Iterator[Stack]:
    """The embedded stack with Slack first, the outbox second, and one team channel."""
    with embedded_stack(tmp_path, port=0, notifiers=["slack", "outbox"],
                        slack_token=SecretStr(TOKEN), slack_api_url=slack.url,
                        team_channels=[BLOCK]) as running:
        submit_change.fn(running.adapters, "CHG-101")  # deliveries are recorded with it
        yield running


def deliveries(stack: Stack, stream: str = "CHG-101") -> list[tuple[str, str, str, str]]:
    """(type, to, channel, kind) of each delivery recorded for `stream`."""
    return [(e.type, e.payload["to"], e.payload["channel"], e.payload["kind"])
            for e in stack.adapters.change_log.events(stream)
            if e.type in ("notice_delivered", "notice_failed")]


def notice(kind: str = "approval-code", to: str = "erin") -> Notice:
    return Notice(to=to, kind=kind, change_id="CHG-101", subject=f"CHG-101: {kind}",
                  body="code: K7QF-M2XP" if kind == "approval-code" else "deploys at noon")


@flow
def sending(a: Adapters, sent: Notice) -> str | None:
    return send(a, sent)


@flow
def notifying(a: Adapters, people: list[str], sent: Notice) -> list[str]:
    return notify(a, people, sent)


def test_a_rate_limited_slack_is_retried_as_it_asked_and_the_delivery_recorded(
        team: Stack, slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    calls, before = slack.calls, len(slack.messages_to(ERIN))
    slack.rate_limit(retry_after=1)
    assert sending(team.adapters, notice()) == "slack"
    assert slack.calls - calls == 2  # refused once with 429, then delivered once
    assert [p.text.count("K7QF-M2XP") for p in slack.messages_to(ERIN)[before:]] == [1]
    assert deliveries(team) == [("notice_delivered", "erin", "slack", "approval-code")]
    assert read_outbox(team.outbox) == []  # Slack took it: nothing went further
    recorded = json.dumps([e.payload for e in team.adapters.change_log.events("CHG-101")])
    assert "K7QF" not in recorded and TOKEN not in recorded  # never the code, nor the token
    assert TOKEN not in caplog.text and "K7QF" not in caplog.text


def test_a_refusing_channel_is_recorded_and_the_next_one_delivers(
        team: Stack, slack: FakeSlack) -> None:
    slack.error("account_inactive")
    assert sending(team.adapters, notice()) == "outbox"
    [failed, delivered] = [e for e in team.adapters.change_log.events("CHG-101")
                           if e.type.startswith("notice_")]
    assert (failed.type, failed.payload["channel"]) == ("notice_failed", "slack")
    assert "HTTP 200, account_inactive" in failed.payload["reason"]
    assert (delivered.type, delivered.payload["channel"]) == ("notice_delivered", "outbox")
    assert [n["to"] for n in read_outbox(team.outbox)] == ["erin"]


def test_a_persons_own_order_comes_first_and_who_has_no_channel_is_recorded(
        team: Stack, slack: FakeSlack) -> None:
    roster = team.adapters.config.roster
    people = {**roster.people,
              "erin": roster.people["erin"].model_copy(update={"channels": ("outbox",)}),
              "bob": roster.people["bob"].model_copy(update={"slack_id": None})}
    config = dataclasses.replace(team.adapters.config,
                                 roster=roster.model_copy(update={"people": people}))
    a = team.adapters.replace(config=config, notifiers={"slack": team.adapters.notifiers["slack"]})
    a.settings = a.settings.model_copy(update={"notifiers": ["slack"]})
    before = len(slack.messages_to(ERIN))
    # Erin asked for the outbox only, which this set-up lacks; Bob has no slack_id.
    assert notifying(a, ["erin", "bob", "quinn"], notice("approval-request")) == ["erin", "bob"]
    assert len(slack.messages_to(ERIN)) == before
    assert deliveries(team) == [("notice_failed", "erin", "", "approval-request"),
                                ("notice_failed", "bob", "", "approval-request"),
                                ("notice_delivered", "quinn", "slack", "approval-request")]


def test_a_group_notice_reaches_the_team_channel_once_and_a_code_never_does(
        team: Stack, webhook: tuple[list[dict[str, Any]], list[int]]) -> None:
    received, answers = webhook
    seen = len(received)
    assert notifying(team.adapters, ["bob", "carol"], notice("schedule", to="")) == []
    assert [r["text"] for r in received[seen:]] == ["CHG-101: schedule\ndeploys at noon"]
    assert ("notice_delivered", f"channel:{BLOCK}", f"channel:{BLOCK}", "schedule") in \
        deliveries(team)
    with pytest.raises(ValueError, match="a one-time code is never posted to a team channel"):
        announce(team.adapters, notice())
    notifying(team.adapters, ["erin"], notice())  # a code: to Erin alone
    assert len(received) == seen + 1
    answers.append(404)  # the webhook refuses: recorded, not retried
    notifying(team.adapters, [], notice("incident", to=""))
    failed = [d for d in deliveries(team) if d[0] == "notice_failed"]
    assert failed == [("notice_failed", f"channel:{BLOCK}", f"channel:{BLOCK}", "incident")]


def test_codes_carry_the_runs_link_and_who_was_not_reached_is_named(
        team: Stack, slack: FakeSlack) -> None:
    a = team.adapters
    change = submit_change.fn(a, "CHG-101")

    @flow
    def asking() -> Any:
        return request_decision(a, change, "engineering_lead", "review", ["erin", "quinn"],
                                "run-42")

    slack.error("user_not_found")  # Erin's code: Slack refuses it, and the outbox cannot
    team.outbox.mkdir(parents=True)  # take it either
    with temporary_settings(updates={PREFECT_UI_URL: "http://ui.example:4200"}):
        request = asking()
    team.outbox.rmdir()
    assert list(request.digests) == ["quinn"] and request.unreached == ("erin",)
    [posted] = [p for p in slack.messages_to("U04QUINN04") if "run-42" in p.text]
    assert "Open http://ui.example:4200/runs/flow-run/run-42, choose Resume" in posted.text
    assert posted.text.endswith("<http://ui.example:4200/runs/flow-run/run-42|Open in Prefect>")
    assert ("**Not reached:** no channel could deliver a code to erin, so they cannot answer "
            "here") in describe(a, change, request)
    assert ("notice_delivered", "carol", "slack", "codes-undelivered") in deliveries(team)
    assert [d[:3] for d in deliveries(team) if d[3] == "approval-code"] == [
        ("notice_failed", "erin", "slack"), ("notice_failed", "erin", "outbox"),
        ("notice_delivered", "quinn", "slack")]
    again = asking()  # the run starts again (a resume): Erin is tried again, and reached
    assert sorted(again.digests) == ["erin", "quinn"] and again.unreached == ()
    assert again.digests["quinn"] == request.digests["quinn"]  # Quinn's code still holds
    reissued = [e.payload for e in a.change_log.events("CHG-101")
                if e.type == "approval_codes_reissued"]
    assert [(r["reason"], list(r["digests"]), r["unreached"]) for r in reissued] == [
        ("the earlier code could not be delivered", ["erin"], [])]


def test_nobody_reachable_stops_the_request_before_anyone_is_asked(team: Stack) -> None:
    a = team.adapters.replace(notifiers={"slack": team.adapters.notifiers["slack"]})
    a.settings = a.settings.model_copy(update={"notifiers": ["slack"]})
    change = submit_change.fn(a, "CHG-101")
    with pytest.raises(ChangeStopped, match=r"nobody who may decide as 'deployer' for CHG-101 "
                                            r"can be sent a one-time code: deploybot have no "
                                            r"personal channel among slack"):
        request_decision.fn(a, change, "deployer", "review", ["deploybot"], "run-43")
    assert [e.type for e in a.change_log.events("CHG-101")
            if e.type == "approval_requested"] == []
