"""The change log port's contract, one suite for every adapter: SQLite, PostgreSQL, memory.

Each test speaks only the `ChangeLog` port. What an adapter does with its own storage
(tampering with rows, triggers, permissions, worker processes) is tested beside it, in
`test_changelog.py` for SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from domain.events import EventType, NewEvent, PayloadError
from domain.lifecycle import IllegalTransition
from integrations.changelog_memory import MemoryChangeLog
from integrations.changelog_retention import RetentionError
from integrations.changelog_schema import GENESIS, event_hash
from integrations.changelog_sql import (
    CLOCK_BEHIND,
    ChangeBusy,
    RecordTampered,
    SqlChangeLog,
)
from integrations.ports import ChangeLog
from tests.support.history import submission
from tests.support.keys import TEST_KEYS

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres),
                        "memory"])
def log(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChangeLog]:
    """A fresh change log on each adapter."""
    found: ChangeLog
    if request.param == "memory":
        found = MemoryChangeLog(TEST_KEYS)
    elif request.param == "sqlite":
        found = SqlChangeLog(f"sqlite:///{tmp_path_factory.mktemp('db') / 'log.db'}",
                             keys=TEST_KEYS)
    else:
        found = SqlChangeLog(request.getfixturevalue("postgres").create_database(),
                             keys=TEST_KEYS)
    yield found
    found.close()


def submit(log: ChangeLog, cid: str, at: datetime = NOW, **change: object) -> None:
    log.append(cid, EventType.CHANGE_SUBMITTED, "alice", submission(cid, **change), at)


def test_appends_chain_and_fold_into_records(log: ChangeLog) -> None:
    submit(log, "CHG-1")
    log.append_many([
        NewEvent("CHG-1", EventType.APPROVAL_RECORDED, "erin",
                 {"role": "engineering_lead", "person_id": "erin", "decision": "approve",
                  "purpose": "review"}, NOW),
        NewEvent("CHG-2", EventType.CHANGE_SUBMITTED, "carol", submission("CHG-2"), NOW)])
    events = log.events("CHG-1")
    assert [e.seq for e in events] == [1, 2] and events[0].prev_hash == GENESIS
    assert events[1].prev_hash == events[0].hash
    record = log.record("CHG-1")
    assert record is not None and (record.state, record.approvers) == (
        "in_review", ["engineering_lead:erin"])
    assert log.record("CHG-404") is None and log.count() == 3
    assert [c.change_id for c in log.changes()] == ["CHG-1", "CHG-2"]
    assert log.check_change("CHG-1") == [] and log.checked_events("CHG-1")[0] == events
    verified = log.verify(fold_changes=True)
    assert verified.ok and verified.checked == 3 and (verified.head_seq, verified.head_hash) \
        == log.head()


def test_an_exported_chain_rehashes_to_its_head(log: ChangeLog) -> None:
    submit(log, "CHG-1")
    log.append("CHG-1", EventType.NOTE, "alice", {"text": "Grüße \u2028 \x1f"}, NOW)
    rows = list(log.export(2))
    prev = log.chain_start()[1]
    for row in rows:
        assert row["prev_hash"] == prev and row["key_id"] == "test-1"
        prev = event_hash(row["seq"], row["change_id"], row["type"], row["at"], row["actor"],
                          row["payload"], prev)
        assert prev == row["hash"] and TEST_KEYS.mac(prev) == row["mac"]
    assert (2, prev) == log.head() and log.event_time(2) == rows[1]["at"]
    assert log.head_with_time() == (2, prev, rows[1]["at"])


@pytest.mark.parametrize(("new", "error", "words"), [
    (NewEvent("CHG-1", "deployment_started", "alice",
              {"version": "1", "previous_version": "0"}, NOW), IllegalTransition,
     "'deployment_started' cannot follow state 'submitted'"),
    (NewEvent("CHG-1", "note", "alice", {"txet": "x"}, NOW), PayloadError,
     "CHG-1: the payload of 'note' is not a Note"),
    (NewEvent("CHG 1", "note", "alice", {"text": "x"}, NOW), ValueError, "is malformed"),
    (NewEvent("CHG-1", "note", "alice", {"text": "x"}, NOW.replace(tzinfo=None)),
     ValueError, "timezone-aware"),
])
def test_a_refused_event_writes_nothing(log: ChangeLog, new: NewEvent,
                                        error: type[Exception], words: str) -> None:
    submit(log, "CHG-1")
    head = log.head()
    ok = NewEvent("CHG-1", "note", "alice", {"text": "first"}, NOW)
    with pytest.raises(error, match=words):
        log.append_many([ok, new])
    assert log.head() == head and len(log.events("CHG-1")) == 1 and log.verify().ok


def test_time_never_goes_back(log: ChangeLog) -> None:
    submit(log, "CHG-1")
    late = log.append("CHG-1", "note", "alice", {"text": "late"}, NOW - timedelta(hours=2))
    assert late.at == NOW and late.payload[CLOCK_BEHIND] == "2026-11-26T07:00:00.000000Z"
    assert log.verify().ok


def test_listings_keep_emergencies_apart_and_reports_take_the_window(log: ChangeLog) -> None:
    submit(log, "CHG-1", NOW - timedelta(days=40))
    submit(log, "CHG-2", NOW, category="emergency", author="carol",
           emergency_trigger="p1_incident", incident_ref="INC-1")
    assert [c.change_id for c in log.changes(emergency=True)] == ["CHG-2"]
    assert [c.change_id for c in log.changes(emergency=False)] == ["CHG-1"]
    assert [c.change_id for c in log.changes(category="normal")] == ["CHG-1"]
    records, events = log.active(NOW - timedelta(days=1), NOW + timedelta(days=1), hashes=True)
    assert [cid for cid, _ in records] == ["CHG-2"]
    assert [(e[0], e[1]) for e in events] == [(2, "CHG-2")] and len(events[0]) == 7
    window = list(log.events_between(NOW - timedelta(days=41), NOW - timedelta(days=39)))
    assert [e.change_id for e in window] == ["CHG-1"]


def approve(log: ChangeLog, cid: str, at: datetime, person: str = "erin") -> None:
    log.append(cid, EventType.APPROVAL_RECORDED, person,
               {"role": "engineering_lead", "person_id": person, "decision": "approve",
                "purpose": "review"}, at)


def deployed(log: ChangeLog, cid: str, at: datetime, version: str, ok: bool = True) -> None:
    """A change of `submit`'s taken from approval to a verified (or failed) deployment."""
    approve(log, cid, at)
    log.append(cid, EventType.APPROVAL_GRANTED, "changeflow", {}, at)
    log.append(cid, EventType.GATES_PASSED, "changeflow", {"gates": []}, at)
    log.append(cid, EventType.DEPLOYMENT_STARTED, "alice",
               {"version": version, "previous_version": "1.0.0"}, at)
    log.append(cid, EventType.DEPLOYMENT_SUCCEEDED, "changeflow", {"version": version}, at)
    log.append(cid, EventType.VERIFICATION_PASSED if ok else EventType.VERIFICATION_FAILED,
               "changeflow", {"checks": []}, at)


def test_deployment_events_are_the_audits_facts_with_their_changes_submissions(
        log: ChangeLog) -> None:
    old, recent = NOW - timedelta(days=10), NOW - timedelta(days=1)
    submit(log, "CHG-1", old, service="billing", version="2.0.0")
    approve(log, "CHG-1", old)
    submit(log, "CHG-2", old, author="bob")  # no fact: its submission is not read
    submit(log, "CHG-3", old, version="1.1.0")
    deployed(log, "CHG-3", recent, "1.1.0")
    log.append("CHG-3", EventType.NOTE, "alice", {"text": "not a fact"}, recent)
    every = log.deployment_events()
    assert [(e.change_id, e.type) for e in every] == [
        ("CHG-1", "change_submitted"), ("CHG-1", "approval_recorded"),
        ("CHG-3", "change_submitted"), ("CHG-3", "approval_recorded"),
        ("CHG-3", "deployment_started")]
    assert every[0].payload["service"] == "billing" and every == sorted(every,
                                                                        key=lambda e: e.seq)
    assert every[1] == log.events("CHG-1")[1]  # as stored, checked
    window = log.deployment_events(since=recent)
    assert [(e.change_id, e.type, e.at) for e in window] == [
        ("CHG-3", "change_submitted", old), ("CHG-3", "approval_recorded", recent),
        ("CHG-3", "deployment_started", recent)]
    assert log.deployment_events(since=NOW) == []


def test_the_last_success_of_a_service_is_the_last_verified(log: ChangeLog) -> None:
    start = NOW - timedelta(days=5)
    submit(log, "CHG-1", start, version="1.1.0")
    deployed(log, "CHG-1", start, "1.1.0")
    submit(log, "CHG-2", start, version="1.2.0")
    deployed(log, "CHG-2", start + timedelta(days=1), "1.2.0")
    submit(log, "CHG-3", start, version="9.0.0", service="billing")
    deployed(log, "CHG-3", start + timedelta(days=2), "9.0.0")
    submit(log, "CHG-4", start, version="1.3.0")
    deployed(log, "CHG-4", start + timedelta(days=2), "1.3.0", ok=False)
    # CHG-1's later activity does not make it the version running in production
    log.append("CHG-1", EventType.NOTE, "alice", {"text": "later"}, start + timedelta(days=3))
    found = log.last_succeeded("sample", excluding="CHG-5")
    assert found is not None and (found.change_id, found.version) == ("CHG-2", "1.2.0")
    found = log.last_succeeded("sample", excluding="CHG-2")
    assert found is not None and found.change_id == "CHG-1"
    found = log.last_succeeded("billing", excluding="CHG-5")
    assert found is not None and found.version == "9.0.0"
    assert log.last_succeeded("billing", excluding="CHG-3") is None
    assert log.last_succeeded("search", excluding="CHG-5") is None


def test_an_intent_without_its_outcome_is_unfinished(log: ChangeLog) -> None:
    submit(log, "CHG-1")
    effect = log.record_intent("CHG-1", "deploy", "alice", {"version": "1"}, NOW)
    (pending,) = log.unfinished_effects("CHG-1")
    assert pending.payload["effect_id"] == effect
    log.record_outcome("CHG-1", effect, "alice", True, {"exit_code": 0}, NOW)
    assert log.unfinished_effects() == []


def test_one_run_holds_a_change(log: ChangeLog) -> None:
    with log.change_lock("CHG-1"):
        with pytest.raises(ChangeBusy), log.change_lock("CHG-1"):
            pass
        with log.change_lock("CHG-2"):
            pass
    with log.change_lock("CHG-1"):
        pass


def test_anchors_hold_until_the_chain_changes_under_them(log: ChangeLog) -> None:
    submit(log, "CHG-1")
    seq, hash_ = log.head()
    assert log.anchor_problem(seq, hash_) is None
    assert "not the anchored" in str(log.anchor_problem(seq, "f" * 64))
    assert "before the anchored event 5" in str(log.anchor_problem(5, "f" * 64))


def test_retention_keeps_young_events_and_changes_whole(log: ChangeLog) -> None:
    old = NOW - timedelta(days=4 * 365)
    submit(log, "CHG-1", old)
    log.append("CHG-1", EventType.CHANGE_CANCELLED, "alice", {"reason": "old"}, old)
    submit(log, "CHG-2", old)
    log.append("CHG-2", EventType.NOTE, "alice", {"text": "still going"}, NOW)
    with pytest.raises(RetentionError, match="must be kept"):
        log.purge(NOW - timedelta(days=30), NOW, "ops")
    assert log.purge(NOW - timedelta(days=3 * 366), NOW, "ops") == 2
    assert log.chain_start()[0] == 2 and log.count() == 2
    assert log.record("CHG-1") is None and log.record("CHG-2") is not None
    assert log.verify().ok and log.verify().checked == 2


def test_the_memory_log_names_what_was_tampered_with() -> None:
    """The memory adapter's own storage, edited as an attacker would edit a database."""
    log = MemoryChangeLog(TEST_KEYS)
    for cid in ("CHG-1", "CHG-2"):
        submit(log, cid)
        log.append(cid, EventType.NOTE, "alice", {"text": "n"}, NOW)
    log.rows[1]["payload"] = '{"text":"edited"}'
    with pytest.raises(RecordTampered, match="CHG-1: event 2 .*does not match its hash"):
        log.events("CHG-1")
    assert log.verify().bad_seq == 2
    log.rows[1]["payload"] = '{"text":"n"}'
    text, key_id, mac = log.cache["CHG-2"]
    log.cache["CHG-2"] = (text.replace('"submitted"', '"ready"'), key_id, mac)
    assert "MAC does not hold" in log.check_change("CHG-2")[0]
    assert log.verify().mismatches[0].startswith("CHG-2: ")
    del log.rows[2]
    assert "removed or inserted" in str(log.verify().problem)


def test_the_memory_log_checks_each_deployment_event() -> None:
    log = MemoryChangeLog(TEST_KEYS)
    submit(log, "CHG-1")
    approve(log, "CHG-1", NOW)
    log.rows[0]["payload"] = log.rows[0]["payload"].replace("summary", "summarY")
    with pytest.raises(RecordTampered, match="CHG-1: event 1 .*does not match its hash"):
        log.deployment_events()
