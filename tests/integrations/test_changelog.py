"""The SQL change log, each behaviour on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from domain.events import EventType, NewEvent
from domain.lifecycle import IllegalTransition
from integrations import changelog_verify
from integrations.chain_keys import ChainKeys
from integrations.changelog_frames import change_frames
from integrations.changelog_retention import RetentionError
from integrations.changelog_schema import event_hash
from integrations.changelog_sql import (
    CLOCK_BEHIND,
    RecordTampered,
    SqlChangeLog,
)
from integrations.changelog_verify import ParallelVerify
from integrations.ports import Verification
from tests.support.history import History, submission
from tests.support.keys import OTHER_KEYS, TEST_KEYS

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def submitted(change_id: str, at: datetime = NOW) -> NewEvent:
    return NewEvent(change_id, "change_submitted", "alice", submission(change_id), at)


def note(change_id: str, i: int, at: datetime = NOW) -> NewEvent:
    return NewEvent(change_id, "note", "alice", {"text": f"note {i}"}, at)


# Worker processes even for a handful of events, in ranges of two: every range boundary
# of a nine-event chain (2|3, 4|5, 6|7, 8|9) is a join checked between ranges, and the
# first two ranges always go to the worker.
WORKERS = ParallelVerify(min_events=1, processes=2, range_events=2, min_range_events=2)


@pytest.fixture
def log(database_url: str):
    log = SqlChangeLog(database_url, keys=TEST_KEYS)
    yield log
    log.close()


@pytest.fixture
def workers_log(database_url: str):
    """The same database, verified with a worker process."""
    log = SqlChangeLog(database_url, keys=TEST_KEYS, parallel=WORKERS)
    yield log
    log.close()


def verified(log: SqlChangeLog, workers_log: SqlChangeLog) -> Verification:
    """`verify` in one process and with a worker process: the very same result."""
    result = log.verify()
    assert workers_log.verify() == result
    return result


def rechain(log: SqlChangeLog, first: int, prev: str, keys: ChainKeys | None = None) -> None:
    """Rewrite events `first`.. and the head as a chain that holds from `prev`.

    Without `keys` the MACs are left as they were: what someone without the key can do.
    """
    with log.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT seq, change_id, type, at, actor, payload FROM change_events "
            f"WHERE seq >= {first} ORDER BY seq").all()
    statements = []
    for seq, cid, typ, at, actor, payload in rows:
        digest = event_hash(seq, cid, typ, at, actor, payload, prev)
        mac = f", mac = '{keys.mac(digest)}'" if keys else ""
        statements.append(f"UPDATE change_events SET prev_hash = '{prev}', hash = '{digest}'"
                          f"{mac} WHERE seq = {seq}")
        prev = digest
    tamper(log, *statements, f"UPDATE chain_head SET hash = '{prev}'")


def seeded(log: SqlChangeLog, changes: int = 3, notes: int = 2) -> None:
    batch = []
    for c in range(1, changes + 1):
        batch.append(submitted(f"CHG-{c}"))
        batch += [note(f"CHG-{c}", i) for i in range(notes)]
    log.append_many(batch)


def tamper(log: SqlChangeLog, *statements: str) -> None:
    """Change the database behind the log's back, as someone with DDL rights could."""
    with log.engine.begin() as conn:
        if log.dialect == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS change_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS change_events_retention")
        else:
            conn.exec_driver_sql("ALTER TABLE change_events DISABLE TRIGGER change_events_guard")
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_append_projects_the_change_record(log: SqlChangeLog) -> None:
    log.append_many([
        submitted("CHG-1"),
        NewEvent("CHG-1", "approval_recorded", "erin",
                 {"role": "engineering_lead", "person_id": "erin", "decision": "approve",
                  "purpose": "review"}, NOW),
    ])
    record = log.record("CHG-1")
    assert record is not None
    assert (record.state, record.author, record.approvers) == (
        "in_review", "alice", ["engineering_lead:erin"])
    assert [e.type for e in log.events("CHG-1")] == ["change_submitted", "approval_recorded"]
    assert log.record("CHG-404") is None


def test_chain_links_every_event_to_the_one_before(log: SqlChangeLog,
                                                   workers_log: SqlChangeLog) -> None:
    seeded(log)
    events = [e for c in ("CHG-1", "CHG-2", "CHG-3") for e in log.events(c)]
    events.sort(key=lambda e: e.seq)
    assert [e.seq for e in events] == list(range(1, 10))
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    result = verified(log, workers_log)
    assert result == Verification(True, 9, 9, events[-1].hash)


def test_illegal_event_is_refused_and_nothing_is_written(log: SqlChangeLog) -> None:
    seeded(log, changes=1)
    head = log.head()
    with pytest.raises(IllegalTransition, match="'deployment_succeeded' cannot follow"):
        log.append_many([note("CHG-1", 9), NewEvent("CHG-1", "deployment_succeeded", "alice",
                                                     {"version": "1.0.1"}, NOW)])
    assert log.head() == head
    assert len(log.events("CHG-1")) == 3
    assert log.record("CHG-1").state == "submitted"  # type: ignore[union-attr]
    assert log.verify().ok


@pytest.mark.parametrize("event, message", [
    (NewEvent("CHG 1", "note", "alice", {}, NOW), "change id 'CHG 1' is malformed"),
    (NewEvent("CHG-1", "note", "", {}, NOW), "actor '' is malformed"),
    (NewEvent("CHG-1", "note", "alice", {"x": object()}, NOW), "payload of 'note'"),
    (NewEvent("CHG-1", "note", "alice", {"x": float("nan")}, NOW), "is not JSON"),
    (NewEvent("CHG-1", "note", "alice", {}, NOW.replace(tzinfo=None)), "timezone-aware"),
    (NewEvent("CHG-1", "note", "alice", {}, NOW), "CHG-1: the payload of 'note' is not a Note: "
                                                  "text: Field required"),
    (NewEvent("CHG-1", "note", "alice", {"text": "t", "txet": "t"}, NOW),
     "txet: Extra inputs are not permitted"),
    (NewEvent("CHG-1", "approval_recorded", "erin", {"role": "qa", "person_id": "quinn",
                                                     "purpose": "review", "decision": "yes"},
              NOW), "decision: Input should be 'approve' or 'decline'"),
    (NewEvent("CHG-1", "change_closed", "alice", {"outcome": ["succeeded"]}, NOW),
     "outcome: Input should be a valid string"),
])
def test_malformed_event_is_refused_before_writing(log: SqlChangeLog, event: NewEvent,
                                                   message: str) -> None:
    seeded(log, changes=1)
    head = log.head()
    with pytest.raises(ValueError, match=message):
        log.append(event.change_id, event.type, event.actor, event.payload, event.at)
    assert log.head() == head


APPENDER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from domain.events import NewEvent
    from integrations.changelog_sql import SqlChangeLog
    from tests.support.history import submission
    from tests.support.keys import TEST_KEYS
    url, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = SqlChangeLog(url, keys=TEST_KEYS)
    now = datetime.now(UTC)
    for i in range(rounds):
        cid = f"{name}-{i}"
        log.append(cid, "change_submitted", "alice", submission(cid), now)
        log.append_many([NewEvent(cid, "note", "alice", {"text": str(j)}, now)
                         for j in range(3)])
""")


def test_two_processes_appending_at_once_keep_one_chain(log: SqlChangeLog,
                                                        database_url: str) -> None:
    rounds = 60
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, database_url, name, str(rounds)],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for name in ("PA", "PB")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    result = log.verify()
    assert result.ok, result.problem
    assert result.checked == log.count() == 2 * rounds * 4
    assert log.head()[0] == 2 * rounds * 4
    assert len(log.changes()) == 2 * rounds


@pytest.mark.parametrize("statements, bad_seq, words", [
    (["UPDATE change_events SET payload = '{\"i\":99}' WHERE seq = 3"], 3, "was edited"),
    (["UPDATE change_events SET actor = 'mallory' WHERE seq = 5"], 5, "was edited"),
    (["UPDATE change_events SET actor = 'mallory' WHERE seq = 6"], 6, "was edited"),
    (["UPDATE change_events SET type = 'forged' WHERE seq = 9"], 9, "was edited"),
    (["DELETE FROM change_events WHERE seq = 4"], 4, "was deleted"),
    (["DELETE FROM change_events WHERE seq = 7"], 7, "was deleted"),
    (["DELETE FROM change_events WHERE seq IN (3, 4)"], 3, "was deleted"),
    (["DELETE FROM change_events WHERE seq = 9"], 9, "events at the end were deleted"),
    (["UPDATE change_events SET seq = -seq WHERE seq IN (4, 5)",
      "UPDATE change_events SET seq = 5 WHERE seq = -4",
      "UPDATE change_events SET seq = 4 WHERE seq = -5"], 4, "reordered"),
    (["INSERT INTO change_events (seq, change_id, type, at, actor, payload, prev_hash, hash, "
      "key_id, mac) VALUES (10, 'CHG-1', 'note', '2026-11-26T09:00:00.000000Z', 'mallory', "
      "'{}', 'forged-prev', 'forged-hash', 'test-1', 'forged-mac')"], 10, "behind the log's back"),
])
def test_verify_names_the_first_tampered_event(log: SqlChangeLog, workers_log: SqlChangeLog,
                                               statements: list[str], bad_seq: int,
                                               words: str) -> None:
    seeded(log)
    assert log.verify().ok
    tamper(log, *statements)
    result = verified(log, workers_log)
    assert not result.ok
    assert result.bad_seq == bad_seq
    assert result.problem is not None and result.problem.startswith(f"event {bad_seq} ")
    assert words in result.problem


@pytest.mark.parametrize("first", [3, 5, 9])
def test_a_forged_stretch_that_holds_by_itself_is_caught_where_it_joins(
        log: SqlChangeLog, workers_log: SqlChangeLog, first: int) -> None:
    seeded(log)
    rechain(log, first, "f" * 64)  # every range after the join holds on its own
    result = verified(log, workers_log)
    assert (result.ok, result.bad_seq, result.checked) == (False, first, first - 1)
    assert result.problem is not None and "inserted, removed or reordered" in result.problem


def test_inserted_event_in_the_middle_is_caught(log: SqlChangeLog,
                                                workers_log: SqlChangeLog) -> None:
    seeded(log)
    tamper(log,
           "UPDATE change_events SET seq = seq + 100 WHERE seq >= 4",
           "UPDATE change_events SET seq = seq - 99 WHERE seq >= 104",
           "INSERT INTO change_events (seq, change_id, type, at, actor, payload, prev_hash, hash,"
           " key_id, mac) VALUES (4, 'CHG-2', 'note', '2026-11-26T09:00:00.000000Z', 'mallory',"
           " '{}', 'forged-prev', 'forged-hash', 'test-1', 'forged-mac')",
           "UPDATE chain_head SET seq = 10")
    result = verified(log, workers_log)
    assert (result.ok, result.bad_seq) == (False, 4)


def test_verify_hands_ranges_to_a_worker_process(log: SqlChangeLog,
                                                 workers_log: SqlChangeLog,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seeded(log)
    here: list[tuple[int, int]] = []
    check_ranges = changelog_verify.check_ranges

    def spy(conn, dialect, mac_keys, spans):
        def recorded():
            for span in spans:
                here.append(span)
                yield span
        return check_ranges(conn, dialect, mac_keys, recorded())

    monkeypatch.setattr(changelog_verify, "check_ranges", spy)
    assert workers_log.verify() == Verification(True, 9, 9, log.head()[1])
    assert here and not {(1, 2), (3, 4)} & set(here)  # the worker's first two ranges
    assert sum(hi - lo + 1 for lo, hi in here) < 9


def unreachable_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand workers connection details that fail (the password as a database name)."""
    worker_spec = SqlChangeLog._worker_spec

    def spec(self, conn):
        spec = worker_spec(self, conn)
        if spec["dialect"] == "sqlite":
            spec["database"] = f"file:{ROOT / 'no-such-dir' / 'changelog.db'}?mode=ro"
        else:
            spec["connect"]["dbname"] = spec["connect"].get("password", "no_such_database")
        return spec

    monkeypatch.setattr(SqlChangeLog, "_worker_spec", spec)


def test_a_worker_that_cannot_connect_fails_verification_closed(
        log: SqlChangeLog, workers_log: SqlChangeLog, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded(log)
    unreachable_worker(monkeypatch)
    result = workers_log.verify()
    assert (result.ok, result.bad_seq, result.checked, result.head_seq) == (False, None, 0, 0)
    assert result.problem is not None and result.problem.startswith(
        "the chain could not be verified: the worker checking events 1 to 2 failed: "
        "OperationalError")
    assert result.problem.endswith("events 1 to 9 were not all checked")
    assert log.verify().ok  # the chain itself holds


@pytest.mark.postgres
def test_the_database_password_never_reaches_argv_or_the_problem(
        postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres.create_database().replace("postgres@", "postgres:pw-s3cret@")
    log = SqlChangeLog(url, keys=TEST_KEYS, parallel=WORKERS)  # the server trusts local ones
    seeded(log)
    argv: list[list[str]] = []
    popen = changelog_verify.subprocess.Popen

    def spy(args, **kwargs):
        argv.append(list(args))
        assert all("pw-s3cret" not in v for v in kwargs.get("env", {}).values())
        return popen(args, **kwargs)

    monkeypatch.setattr(changelog_verify.subprocess, "Popen", spy)
    assert log.verify().ok
    unreachable_worker(monkeypatch)  # the error names the database: the password
    result = log.verify()
    log.close()
    assert argv and all("pw-s3cret" not in " ".join(a) for a in argv)
    assert result.problem is not None and "does not exist" in result.problem
    assert "pw-s3cret" not in result.problem and '"***"' in result.problem


@pytest.mark.parametrize("command, timeout_s, words", [
    ("import sys; sys.stdin.readline(); sys.exit(3)", 30, "exited without answering "
     "(exit status 3)"),
    ("import time; time.sleep(30)", 0.3, "did not answer within 0.3 s (killed by signal 9)"),
])
def test_a_worker_that_dies_or_hangs_fails_verification_closed(
        log: SqlChangeLog, database_url: str, monkeypatch: pytest.MonkeyPatch, command: str,
        timeout_s: float, words: str) -> None:
    seeded(log)
    monkeypatch.setattr(changelog_verify, "WORKER_COMMAND", [sys.executable, "-c", command])
    slow = SqlChangeLog(database_url, keys=TEST_KEYS, parallel=ParallelVerify(
        min_events=1, processes=2, range_events=2, min_range_events=2,
        worker_timeout_s=timeout_s))
    result = slow.verify()
    slow.close()
    assert (result.ok, result.bad_seq, result.checked) == (False, None, 0)
    assert result.problem is not None and words in result.problem


def test_database_refuses_updates_and_young_deletes(log: SqlChangeLog) -> None:
    seeded(log, changes=1)
    for statement in ("UPDATE change_events SET actor = 'mallory' WHERE seq = 1",
                      "DELETE FROM change_events WHERE seq = 3"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only|cannot be deleted"):
            with log.engine.begin() as conn:
                conn.exec_driver_sql(statement)
    assert log.count() == 3
    assert log.verify().ok


def test_purge_inside_retention_is_refused(log: SqlChangeLog) -> None:
    seeded(log, changes=1)
    with pytest.raises(RetentionError, match="younger than 3 years"):
        log.purge(cutoff=NOW - timedelta(days=3 * 365 - 30), now=NOW, actor="ops")
    assert log.count() == 3


def test_purge_keeps_a_chain_that_verifies_from_its_checkpoint(
        log: SqlChangeLog, workers_log: SqlChangeLog) -> None:
    old = datetime.now(UTC) - timedelta(days=5 * 365)
    older_than_cutoff = [submitted("CHG-1", old), note("CHG-1", 0, old),
                         submitted("CHG-2", old + timedelta(days=1))]
    recent = [note("CHG-2", 1), submitted("CHG-3"), note("CHG-3", 0)]
    log.append_many(older_than_cutoff + recent)
    now = datetime.now(UTC)
    purged = log.purge(cutoff=now - timedelta(days=4 * 365), now=now, actor="ops")
    # CHG-2 goes on past the cutoff: it is kept whole, so its record still folds
    assert purged == 2
    assert log.count() == 4
    result = verified(log, workers_log)
    assert (result.ok, result.checked, result.head_seq) == (True, 4, 6)
    assert log.record("CHG-1") is None  # every event of CHG-1 is gone
    chg2 = log.record("CHG-2")
    assert chg2 is not None and chg2.state == "submitted"
    assert log.check_change("CHG-2") == [] and log.check_change("CHG-3") == []
    # The checkpoint still catches an event put back before it...
    tamper(log, "INSERT INTO change_events (seq, change_id, type, at, actor, payload, "
                "prev_hash, hash, key_id, mac) VALUES (2, 'CHG-1', 'note', "
                "'2020-01-01T00:00:00.000000Z', 'mallory', '{}', 'forged-prev', 'forged-hash', "
                "'test-1', 'forged-mac')")
    assert not verified(log, workers_log).ok
    # ...and tampering with the first remaining event.
    tamper(log, "DELETE FROM change_events WHERE seq IN (2, 3)")
    assert verified(log, workers_log).bad_seq == 3


CRASH_MID_APPEND = textwrap.dedent("""
    import os, sys
    from datetime import UTC, datetime
    from integrations import changelog_sql, changelog_verify
    from domain.events import NewEvent
    from integrations.changelog_sql import SqlChangeLog
    from tests.support.history import submission
    from tests.support.keys import TEST_KEYS
    def crash(*args, **kwargs):
        os.kill(os.getpid(), 9)   # the events are inserted, the transaction is not committed
    changelog_sql.SqlChangeLog._save_records = staticmethod(crash)
    log = SqlChangeLog(sys.argv[1], keys=TEST_KEYS)
    now = datetime.now(UTC)
    log.append_many([NewEvent("CHG-9", "change_submitted", "alice", submission("CHG-9"), now),
                     NewEvent("CHG-9", "note", "alice", {"text": "n"}, now)])
""")


def test_a_crash_mid_append_leaves_no_half_written_event(log: SqlChangeLog,
                                                         database_url: str) -> None:
    seeded(log, changes=1)
    head = log.head()
    done = subprocess.run([sys.executable, "-c", CRASH_MID_APPEND, database_url], cwd=ROOT,
                          capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert log.head() == head
    assert log.events("CHG-9") == [] and log.record("CHG-9") is None
    assert log.verify().ok
    log.append("CHG-9", "change_submitted", "alice", submission("CHG-9"), NOW)  # still works
    assert log.verify().ok


CRASH_AFTER_INTENT = textwrap.dedent("""
    import os, sys
    from datetime import UTC, datetime
    from integrations.changelog_sql import SqlChangeLog
    from tests.support.keys import TEST_KEYS
    log = SqlChangeLog(sys.argv[1], keys=TEST_KEYS)
    log.record_intent("CHG-1", "deploy", "alice", {"version": "1.0.0"}, datetime.now(UTC))
    os.kill(os.getpid(), 9)   # the deploy would have run here
""")


def test_a_crash_between_intent_and_outcome_is_visible(log: SqlChangeLog,
                                                       database_url: str) -> None:
    seeded(log, changes=1)
    done = subprocess.run([sys.executable, "-c", CRASH_AFTER_INTENT, database_url], cwd=ROOT,
                          capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    (pending,) = log.unfinished_effects("CHG-1")
    assert pending.payload["action"] == "deploy"
    log.record_outcome("CHG-1", pending.payload["effect_id"], "alice", True,
                       {"checked": "deployed version found"}, NOW)
    assert log.unfinished_effects() == []


def test_queries_keep_emergencies_apart(log: SqlChangeLog) -> None:
    log.append_many([submitted("CHG-1"),
                     NewEvent("CHG-2", "change_submitted", "carol",
                              submission("CHG-2", "emergency", "carol",
                                         emergency_trigger="p1_incident",
                                         incident_ref="INC-1"), NOW)])
    assert [c.change_id for c in log.changes(emergency=True)] == ["CHG-2"]
    assert [c.change_id for c in log.changes(emergency=False)] == ["CHG-1"]
    assert [c.change_id for c in log.changes(category="normal")] == ["CHG-1"]
    window = list(log.events_between(NOW - timedelta(minutes=1), NOW + timedelta(minutes=1)))
    assert [e.change_id for e in window] == ["CHG-1", "CHG-2"]
    assert list(log.events_between(NOW + timedelta(minutes=1), NOW + timedelta(hours=1))) == []


def test_schema_creation_is_idempotent(database_url: str) -> None:
    first = SqlChangeLog(database_url, keys=TEST_KEYS)
    first.append("CHG-1", "change_submitted", "alice", submission("CHG-1"), NOW)
    second = SqlChangeLog(database_url, keys=TEST_KEYS)
    assert second.verify().ok and second.count() == 1
    first.close()
    second.close()



def test_an_event_forged_through_the_adapter_without_the_key_is_named(
        log: SqlChangeLog, workers_log: SqlChangeLog, database_url: str) -> None:
    seeded(log)
    forger = SqlChangeLog(database_url, keys=OTHER_KEYS)  # write access, not the key
    with pytest.raises(RecordTampered, match="CHG-1: its cached record's MAC does not hold"):
        forger.append("CHG-1", "approval_recorded", "mallory", {"role": "engineering_lead",
                      "person_id": "erin", "decision": "approve", "purpose": "review"}, NOW)
    forger.append_many([submitted("CHG-9"), NewEvent(
        "CHG-9", "approval_recorded", "mallory",
        {"role": "engineering_lead", "person_id": "erin", "decision": "approve",
         "purpose": "review"}, NOW)])
    forger.close()
    result = verified(log, workers_log)
    assert (result.ok, result.bad_seq) == (False, 10)
    assert result.problem is not None and "MAC does not hold" in result.problem
    with pytest.raises(RecordTampered, match=r"CHG-9: event 10 \(change_submitted\)"):
        log.record("CHG-9")
    with pytest.raises(RecordTampered, match=r"CHG-9: event 10 \(change_submitted\)"):
        log.deployment_events()  # the practices audit's read is checked too
    assert any("event 10" in p for p in log.check_change("CHG-9"))


def test_a_rewrite_with_recomputed_hashes_is_named_at_its_first_event(
        log: SqlChangeLog, workers_log: SqlChangeLog) -> None:
    seeded(log)
    with log.engine.connect() as conn:
        prev = conn.exec_driver_sql("SELECT hash FROM change_events WHERE seq = 4").scalar_one()
    tamper(log, "UPDATE change_events SET payload = '{\"i\":7}' WHERE seq = 5")
    rechain(log, 5, prev)  # every hash after the edit recomputed: the chain holds as sha256
    result = verified(log, workers_log)
    assert (result.ok, result.bad_seq) == (False, 5)
    assert result.problem is not None and "MAC does not hold" in result.problem


def test_the_clock_going_back_never_dates_an_event_before_its_predecessor(
        log: SqlChangeLog) -> None:
    log.append_many([submitted("CHG-1")])
    late = log.append("CHG-1", "note", "alice", {"text": "late"}, NOW - timedelta(hours=2))
    assert late.at == NOW
    assert late.payload[CLOCK_BEHIND] == "2026-11-26T07:00:00.000000Z"
    assert log.verify().ok


def test_verify_names_an_event_dated_before_its_predecessor(
        log: SqlChangeLog, workers_log: SqlChangeLog) -> None:
    seeded(log)
    with log.engine.connect() as conn:
        prev = conn.exec_driver_sql("SELECT hash FROM change_events WHERE seq = 5").scalar_one()
    # Even the key's holder cannot date an event before the one before it.
    tamper(log, "UPDATE change_events SET at = '2026-11-26T08:00:00.000000Z' WHERE seq = 6")
    rechain(log, 6, prev, keys=TEST_KEYS)
    result = verified(log, workers_log)
    assert (result.ok, result.bad_seq) == (False, 6)
    assert result.problem is not None and "before the event before it" in result.problem


def test_an_edited_projection_is_refused_and_named(log: SqlChangeLog,
                                                   workers_log: SqlChangeLog) -> None:
    seeded(log)
    tamper(log, "UPDATE changes SET state = 'ready', record = replace(record, "
                "'\"state\":\"submitted\"', '\"state\":\"ready\"') WHERE change_id = 'CHG-2'")
    record = log.record("CHG-2")  # decisions fold the events: the edit changes nothing
    assert record is not None and record.state == "submitted"
    with pytest.raises(RecordTampered, match="CHG-2: its cached record's MAC does not hold"):
        log.changes()
    (problem,) = log.check_change("CHG-2")
    assert "CHG-2" in problem and "its events say state submitted" in problem
    result = verified(log, workers_log)
    assert not result.ok and result.bad_seq is None
    assert len(result.mismatches) == 1 and result.mismatches[0].startswith("CHG-2: ")


def test_a_projection_replaced_by_an_older_row_of_its_change_is_named(
        log: SqlChangeLog) -> None:
    seeded(log, changes=1, notes=0)
    with log.engine.connect() as conn:
        old = conn.exec_driver_sql("SELECT record, mac FROM changes").one()
    log.append("CHG-1", "change_cancelled", "alice", {"reason": "withdrawn"}, NOW)
    tamper(log, f"UPDATE changes SET record = '{old.record}', mac = '{old.mac}', "
                "state = 'submitted'")
    (problem,) = log.check_change("CHG-1")
    assert "as of event 1 but its last event is 2" in problem
    assert log.verify(fold_changes=True).mismatches


def test_an_event_type_is_stored_as_its_plain_name(log: SqlChangeLog) -> None:
    log.append_many([submitted("CHG-1"),
                     NewEvent("CHG-1", EventType.NOTE, "alice", {"text": "n"}, NOW)])
    (_, stored) = list(log.export(2))
    assert stored["type"] == "note" and type(stored["type"]) is str
    assert log.verify().ok


def test_an_edited_column_of_the_cache_hides_no_change(log: SqlChangeLog) -> None:
    """Listings and reports choose changes by the checked record and the events, never by
    a column someone could edit without touching the MAC'd record."""
    log.append_many([submitted("CHG-1"), NewEvent(
        "CHG-2", "change_submitted", "carol",
        submission("CHG-2", "emergency", "carol", emergency_trigger="p1_incident",
                   incident_ref="INC-1"), NOW)])
    tamper(log, "UPDATE changes SET state = 'finding' WHERE change_id = 'CHG-1'",
           "UPDATE changes SET category = 'normal', opened_at = '2001-01-01T00:00:00.000000Z', "
           "updated_at = '2001-01-01T00:00:00.000000Z' WHERE change_id = 'CHG-2'")
    assert [c.change_id for c in log.changes()] == ["CHG-1", "CHG-2"]
    assert [c.change_id for c in log.changes(emergency=True)] == ["CHG-2"]
    records, events = log.active(NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert [cid for cid, _ in records] == ["CHG-1", "CHG-2"] and len(events) == 2


def test_a_deleted_row_of_the_cache_is_named(log: SqlChangeLog) -> None:
    seeded(log, changes=2, notes=0)
    tamper(log, "DELETE FROM changes WHERE change_id = 'CHG-2'")
    with pytest.raises(RecordTampered, match="CHG-2: it has events but no cached record"):
        log.changes()
    records, _ = log.active(NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert [cid for cid, _ in records] == ["CHG-1", "CHG-2"]  # CHG-2 folded from its events
    assert "CHG-2: it has events but no cached record" in log.verify().mismatches


def test_a_report_reads_the_fold_where_the_cache_was_edited(log: SqlChangeLog) -> None:
    """A rollback edited into a success in the cache is still a rollback in the report."""
    History(log, "CHG-1", "normal", NOW - timedelta(hours=5)) \
        .approve("engineering_lead", "erin").add("approval_granted").gates() \
        .deploy(NOW - timedelta(hours=3), NOW - timedelta(hours=4), ok=False) \
        .roll_back(4, incident=False).close("rolled_back")
    tamper(log, "UPDATE changes SET outcome = 'succeeded', record = replace(record, "
                "'\"outcome\":\"rolled_back\"', '\"outcome\":\"succeeded\"')")
    records, frame = change_frames(log, NOW - timedelta(days=1), NOW + timedelta(days=1))
    (record,) = [orjson.loads(text) for text in records["record"]]
    assert record["outcome"] == "rolled_back" and len(frame) > 5
    assert any(m.startswith("CHG-1: its cached record's MAC") for m in log.verify().mismatches)
