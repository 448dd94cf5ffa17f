"""The `change-log-verify` flow against a real (test) Prefect server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.change_log_verify import change_log_verify
from integrations.changelog_sql import SqlChangeLog
from integrations.ports import ChainBroken
from tests.support.history import submission
from tests.support.keys import TEST_KEY_TEXT, TEST_KEYS

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def change_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqlChangeLog:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    monkeypatch.setenv("CHANGEFLOW_DATABASE_URL", url)
    monkeypatch.setenv("CHANGEFLOW_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CHANGEFLOW_CHAIN_KEY", TEST_KEY_TEXT)
    log = SqlChangeLog(url, keys=TEST_KEYS)
    log.append("CHG-1", "change_submitted", "alice", submission("CHG-1"), NOW)
    log.append("CHG-1", "note", "alice", {"text": "x"}, NOW)
    return log


async def _artifact_markdown() -> str:
    async with get_client() as client:
        artifact = await client.read_latest_artifacts()
        found = [a for a in artifact if a.key == "change-log-verification"]
        assert found, "no change-log-verification artifact"
        return str(found[0].data)


def test_a_sound_chain_completes_and_publishes_its_head(change_log: SqlChangeLog) -> None:
    result = change_log_verify()
    head = change_log.head()[1]
    assert {k: result[k] for k in ("events", "head_seq", "head_hash", "anchors_held")} == {
        "events": 2, "head_seq": 2, "head_hash": head, "anchors_held": 0}
    anchored = json.loads(str(result["anchored"]))
    assert (anchored["seq"], anchored["hash"], anchored["key_id"]) == (2, head, "test-1")
    markdown = asyncio.run(_artifact_markdown())
    assert "Change log chain holds" in markdown and head in markdown
    change_log.append("CHG-1", "note", "alice", {"text": "y"}, NOW)
    assert change_log_verify()["anchors_held"] == 1  # the earlier anchor, checked


def test_a_chain_that_lost_an_anchored_event_fails_the_run(change_log: SqlChangeLog) -> None:
    change_log.append("CHG-2", "change_submitted", "carol", submission("CHG-2"), NOW)
    change_log_verify()  # anchors event 3
    with change_log.engine.begin() as conn:  # the tail cut cleanly: the chain still verifies
        conn.exec_driver_sql("DROP TRIGGER change_events_retention")
        conn.exec_driver_sql("DELETE FROM change_events WHERE seq = 3")
        conn.exec_driver_sql("DELETE FROM changes WHERE change_id = 'CHG-2'")
        second = conn.exec_driver_sql("SELECT hash FROM change_events WHERE seq = 2").scalar()
        conn.exec_driver_sql(f"UPDATE chain_head SET seq = 2, hash = '{second}'")
    assert change_log.verify(fold_changes=True).ok
    state = change_log_verify(return_state=True)
    assert state.is_failed()
    with pytest.raises(ChainBroken, match=r"anchor 1 in .* \(event 3\) is no longer held"):
        state.result()
    assert "anchor not held" in asyncio.run(_artifact_markdown())


def test_a_tampered_chain_fails_the_run_naming_the_event(change_log: SqlChangeLog) -> None:
    with change_log.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER change_events_no_update")
        conn.exec_driver_sql("UPDATE change_events SET actor = 'mallory' WHERE seq = 2")
    state = change_log_verify(return_state=True)
    assert state.is_failed()
    with pytest.raises(ChainBroken, match=r"event 2 \(CHG-1, note\): .* was edited"):
        state.result()
    assert "first bad event | 2" in asyncio.run(_artifact_markdown())
