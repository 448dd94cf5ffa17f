"""The record decides: what a person with database access does to the record stops the run.

Each attack is the one an insider with the workers' database credentials would try; each
must stop the change before production, leave an integrity alarm naming it, and tell the
CISO.
"""

from __future__ import annotations

import threading
import time

import pytest

from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack
from flows.change_request import change_request
from integrations.outbox import read_outbox
from tasks.common import ChangeStopped
from tasks.integrity import ALARMS, IntegrityAlarm


def alarms(stack: Stack) -> list[dict[str, object]]:
    return [e.payload for e in stack.adapters.change_log.events(ALARMS)
            if e.type == "integrity_alarm"]


def edit_projection(stack: Stack, change_id: str, state: str) -> None:
    """Set the change's cached row to `state`, as someone holding the database login could."""
    with stack.adapters.change_log.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE changes SET state = ?, record = json_set(record, '$.state', ?) "
            "WHERE change_id = ?", (state, state, change_id))


def deploys(stack: Stack, change_id: str) -> int:
    return sum(1 for e in stack.adapters.change_log.events(change_id)
               if e.type == "effect_started" and e.payload["action"] == "deploy-production")


def test_an_unapproved_change_set_ready_in_the_projection_never_deploys(stack: Stack) -> None:
    stack.settings.approval_timeout_hours = 2 / 3600
    with pytest.raises(ChangeStopped, match="expired"):  # nobody records the verbal approval
        change_request("CHG-201")
    edit_projection(stack, "CHG-201", "ready")
    with pytest.raises(IntegrityAlarm, match="CHG-201: stopped before it could go on"):
        change_request("CHG-201")
    assert deploys(stack, "CHG-201") == 0
    (alarm,) = alarms(stack)
    assert alarm["change"] == "CHG-201"
    (problem,) = alarm["problems"]  # type: ignore[misc]
    assert "cached record's MAC does not hold" in str(problem)
    assert "its events say state expired" in str(problem)
    told = [n for n in read_outbox(stack.outbox) if n["kind"] == "integrity-alarm"]
    assert [n["to"] for n in told] == [p.id for p in stack.adapters.config.roster.holding("ciso")]
    assert log_verify_names(stack, "CHG-201")


def log_verify_names(stack: Stack, change_id: str) -> bool:
    result = stack.adapters.change_log.verify(fold_changes=True)
    return not result.ok and any(m.startswith(f"{change_id}: ") for m in result.mismatches)


def test_two_runs_of_one_change_never_interleave(stack: Stack) -> None:
    outcomes: dict[str, object] = {}

    def first() -> None:
        outcomes["first"] = change_request("CHG-101")["outcome"]

    runner = threading.Thread(target=first)
    runner.start()
    deadline = time.monotonic() + 60
    log = stack.adapters.change_log
    while not any(e.type == "approval_requested" for e in log.events("CHG-101")):
        assert time.monotonic() < deadline, "the first run never asked for a review"
        time.sleep(0.1)
    # The first run waits for its reviewer; a second run of the same ticket stops at once.
    with pytest.raises(ChangeStopped, match="another run is taking this change"):
        change_request("CHG-101")
    with ScriptedApprover(stack.outbox).start(interval=0.2):
        runner.join(timeout=240)
    assert outcomes == {"first": "succeeded"}
    events = log.events("CHG-101")
    reviews = [(e.payload["role"], e.payload.get("purpose")) for e in events
               if e.type == "approval_recorded"]
    assert len(reviews) == len(set(reviews))  # one decision per role and purpose
    assert deploys(stack, "CHG-101") == 1
