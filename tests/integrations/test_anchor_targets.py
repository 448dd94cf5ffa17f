"""Anchor targets beyond the file: a ticket's comments (local and Jira) and RFC 3161 stamps.

The timestamp authority is a real `openssl ts` behind HTTP (`tests.support.tsa`); Jira is
the local fake, reached through the real `jira` library.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from config.loader import load_config
from config.settings import PROJECT_ROOT, Settings
from integrations.anchors import (
    ANCHOR_COMMENT,
    AnchorError,
    FileAnchors,
    TicketAnchors,
    signed_anchor,
)
from integrations.changelog_sql import SqlChangeLog
from integrations.jira_tickets import JiraChangeTickets
from integrations.local_tickets import LocalChangeTickets
from integrations.ports import Anchors, TicketSystemUnavailable
from integrations.timestamps import TimestampAnchors
from tasks.anchoring import check_anchors, publish_head
from tests.fakes.jira_server import FakeJira
from tests.support.history import History
from tests.support.jira import jira_project
from tests.support.keys import OTHER_KEYS, TEST_KEYS
from tests.support.tsa import LocalAuthority, local_authority, make_authority

CONFIG = load_config(PROJECT_ROOT / "config")
PUBLIC = TEST_KEYS.public_keys()
AT = "2026-07-01T09:00:00.000000Z"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAuthority]:
    with local_authority(tmp_path_factory.mktemp("tsa")) as running:
        yield running


@pytest.fixture
def stamped(authority: LocalAuthority, tmp_path: Path) -> Iterator[TimestampAnchors]:
    authority.fault = "none"
    yield TimestampAnchors(tmp_path / "anchors.stamped.jsonl", authority.url,
                           authority.ca_file)
    authority.fault = "none"


def local_ticket(tmp_path: Path) -> LocalChangeTickets:
    folder = tmp_path / "tickets"
    folder.mkdir()
    (folder / "CHG-1.yaml").write_text("summary: the anchor ticket\n")
    return LocalChangeTickets(folder)


def test_a_ticket_keeps_anchors_as_comments_and_names_a_forged_one(tmp_path: Path) -> None:
    tickets = local_ticket(tmp_path)
    target = TicketAnchors(tickets, "CHG-1")
    first, second = (signed_anchor(TEST_KEYS, n, f"{n:064x}", AT) for n in (3, 9))
    target.publish(first)
    tickets.add_comment("CHG-1", "an ordinary comment, not an anchor")
    target.publish(second)
    assert target.read(PUBLIC) == [first, second]
    TicketAnchors(tickets, "CHG-1").publish(signed_anchor(OTHER_KEYS, 12, "c" * 64, AT))
    with pytest.raises(AnchorError, match="CHG-1 comment 4: its signature does not hold"):
        target.read(PUBLIC)


def test_an_anchor_comment_without_its_line_is_named(tmp_path: Path) -> None:
    tickets = local_ticket(tmp_path)
    tickets.add_comment("CHG-1", ANCHOR_COMMENT + "\n(the line was deleted)")
    with pytest.raises(AnchorError, match="CHG-1 comment 1: not an anchor"):
        TicketAnchors(tickets, "CHG-1").read(PUBLIC)


@pytest.mark.parametrize("mode", ["cloud", "datacenter"])
def test_a_jira_issue_keeps_anchors_through_the_jira_library(mode: str) -> None:
    with FakeJira(mode=mode) as fake:  # type: ignore[arg-type]
        project = jira_project(fake, CONFIG.jira)
        key = fake.create_issue("CHG", {"summary": "change log anchors"})
        s = project.settings()
        tickets = JiraChangeTickets(s["jira_url"], project.mapping, CONFIG.roster,
                                    SecretStr(s["jira_token"]), email=s["jira_email"],
                                    timeout_seconds=5)
        target = TicketAnchors(tickets, key)
        anchor = signed_anchor(TEST_KEYS, 5, "a" * 64, AT)
        assert target.publish(anchor) == f"comments of {key}"
        assert TicketAnchors(tickets, key).read(PUBLIC) == [anchor]


def test_a_stamped_anchor_carries_the_authoritys_token(
        stamped: TimestampAnchors, authority: LocalAuthority) -> None:
    before = authority.queries
    anchors = [signed_anchor(TEST_KEYS, n, f"{n:064x}", AT) for n in (1, 2)]
    for anchor in anchors:
        stamped.publish(anchor)
    assert authority.queries == before + 2
    assert stamped.read(PUBLIC) == anchors
    entry = json.loads(stamped.path.read_text().splitlines()[0])
    assert entry["anchor"] == anchors[0].line() and len(entry["timestamp"]) > 100


def test_a_token_moved_to_another_anchor_is_refused(stamped: TimestampAnchors) -> None:
    for n in (1, 2):
        stamped.publish(signed_anchor(TEST_KEYS, n, f"{n:064x}", AT))
    first, second = (json.loads(line) for line in stamped.path.read_text().splitlines())
    first["timestamp"] = second["timestamp"]
    stamped.path.write_text(json.dumps(first) + "\n")
    with pytest.raises(AnchorError, match="line 1: checking its timestamp: openssl refused"):
        stamped.read(PUBLIC)


def test_a_token_of_another_authority_is_refused(stamped: TimestampAnchors,
                                                 tmp_path: Path) -> None:
    stamped.publish(signed_anchor(TEST_KEYS, 1, "1" * 64, AT))
    other = TimestampAnchors(stamped.path, stamped.url, make_authority(tmp_path / "other"))
    with pytest.raises(AnchorError, match="checking its timestamp: openssl refused"):
        other.read(PUBLIC)


def test_an_event_dated_after_its_stamp_is_named(stamped: TimestampAnchors) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with pytest.raises(AnchorError, match="before event 4 it anchors .*the event's time is "
                                          "forged"):
        stamped.publish(signed_anchor(TEST_KEYS, 4, "4" * 64, future))
    assert not stamped.path.exists()


@pytest.mark.parametrize(("fault", "words"), [
    ("error", "answered HTTP 500"),
    ("content-type", r"answered HTTP 200 \(text/html\), not a timestamp reply"),
    ("garbage", "checking its timestamp: openssl refused"),
])
def test_an_authority_that_fails_anchors_nothing(stamped: TimestampAnchors,
                                                 authority: LocalAuthority, fault: str,
                                                 words: str) -> None:
    authority.fault = fault  # type: ignore[assignment]
    with pytest.raises(AnchorError, match=words):
        stamped.publish(signed_anchor(TEST_KEYS, 1, "1" * 64, AT))
    assert not stamped.path.exists()


def test_an_unreachable_authority_is_named(tmp_path: Path, refused_url: str) -> None:
    target = TimestampAnchors(tmp_path / "s.jsonl", refused_url, tmp_path / "ca.crt")
    with pytest.raises(AnchorError, match="is unreachable: ConnectionError"):
        target.publish(signed_anchor(TEST_KEYS, 1, "1" * 64, AT))


def test_every_target_holds_the_head_and_names_a_truncated_tail(
        stamped: TimestampAnchors, tmp_path: Path) -> None:
    log = SqlChangeLog(f"sqlite:///{tmp_path / 'log.db'}", keys=TEST_KEYS)
    History(log, "CHG-1", "normal", datetime(2026, 7, 1, tzinfo=UTC)) \
        .approve("engineering_lead", "erin").add("approval_granted")
    targets: list[Anchors] = [FileAnchors(tmp_path / "anchors.jsonl"),
                              TicketAnchors(local_ticket(tmp_path), "CHG-1"), stamped]
    anchor = publish_head(log, targets)
    assert check_anchors(log, targets).checked == 3 and anchor.seq == 3
    with log.engine.begin() as conn:  # as the schema's owner: the triggers dropped
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS change_events_retention")
        conn.exec_driver_sql("DELETE FROM change_events WHERE seq = 3")
        conn.exec_driver_sql("UPDATE chain_head SET seq = 2, hash = (SELECT hash FROM "
                             "change_events WHERE seq = 2)")
    found = check_anchors(log, targets[1:])
    assert found.checked == 0 and found.problem is not None
    assert "anchor 1 in comments of CHG-1 (event 3)" in found.problem
    log.close()


def test_a_timestamp_authority_needs_its_ca_certificate() -> None:
    with pytest.raises(ValidationError, match="CHANGEFLOW_ANCHOR_TSA_CA_FILE is not"):
        Settings(anchor_tsa_url="http://127.0.0.1:1/tsa")




class DownTickets(LocalChangeTickets):
    """A ticket system that refuses every comment, as Jira does when it is down."""

    def add_comment(self, key: str, body: str) -> None:
        raise TicketSystemUnavailable("Jira answered 503")

    def comments(self, key: str) -> list[str]:
        raise TicketSystemUnavailable("Jira answered 503")


def test_a_target_that_fails_is_named_with_where_the_head_is_kept(
        stamped: TimestampAnchors, tmp_path: Path, refused_url: str) -> None:
    log = SqlChangeLog(f"sqlite:///{tmp_path / 'log.db'}", keys=TEST_KEYS)
    History(log, "CHG-1", "normal", datetime(2026, 7, 1, tzinfo=UTC))
    folder = tmp_path / "tickets"
    folder.mkdir()
    (folder / "OPS-1.yaml").write_text("summary: anchors\n")
    down = TicketAnchors(DownTickets(folder), "OPS-1")
    file = FileAnchors(tmp_path / "anchors.jsonl")
    with pytest.raises(AnchorError, match=r"cannot comment on OPS-1: Jira answered 503 "
                                          r"\(event 1 is anchored in: .*anchors.jsonl\)"):
        publish_head(log, [file, down])
    assert len(file.read(PUBLIC)) == 1
    found = check_anchors(log, [file, down])
    assert found.checked == 1 and "cannot read the comments of OPS-1" in str(found.problem)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    with pytest.raises(AnchorError, match="cannot append to .*not-a-dir/a.jsonl: File exists"):
        publish_head(log, [FileAnchors(blocked / "a.jsonl")])
    with pytest.raises(AnchorError, match="is unreachable.*anchored in: no target"):
        publish_head(log, [TimestampAnchors(tmp_path / "s.jsonl", refused_url,
                                            stamped.ca_file)])
    log.close()


@pytest.mark.parametrize("line", ["not json", '{"anchor": "x"}', '["a"]',
                                  '{"anchor": "x", "timestamp": "***"}'])
def test_a_malformed_stamped_line_is_named(stamped: TimestampAnchors, line: str) -> None:
    stamped.publish(signed_anchor(TEST_KEYS, 1, "1" * 64, AT))
    with stamped.path.open("a") as f:
        f.write(line + "\n")
    with pytest.raises(AnchorError, match=r"line 2: not a stamped anchor"):
        stamped.read(PUBLIC)
