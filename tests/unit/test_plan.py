"""The next step due for a change (`domain.plan`), judged from its events and the policy."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain.models import ChangeEvent, Decision, Roster
from domain.plan import Step, next_step
from domain.policy import Policy
from integrations.changelog_memory import MemoryChangeLog
from tests.support.history import History
from tests.support.keys import TEST_KEYS
from tests.unit.conftest import make_change, utc

NOW = utc(2026, 11, 26, 9)


def history(*steps: str, slot: datetime | None = None) -> list[ChangeEvent]:
    """CHG-1's events after `steps`, each a short name for what the flows record."""
    log = MemoryChangeLog(TEST_KEYS)
    h = History(log, "CHG-1", "normal", NOW - timedelta(days=2))  # type: ignore[arg-type]
    for name in steps:
        if name == "reviewed":
            h.approve("engineering_lead", "erin")
        elif name == "declined":
            h.add("approval_recorded", "erin", role="engineering_lead", person_id="erin",
                  decision=Decision.DECLINE, purpose="review", channel="prefect-ui",
                  comment="not yet")
        elif name == "granted":
            h.add("approval_granted", approvers={"engineering_lead": "erin"})
        elif name == "staged":
            h.stage()
        elif name == "signed":
            h.approve("qa", "quinn", purpose="staging-sign-off")
        elif name == "sign-off declined":
            h.add("approval_recorded", "quinn", role="qa", person_id="quinn",
                  decision=Decision.DECLINE, purpose="staging-sign-off",
                  channel="prefect-ui", comment="flaky")
        elif name == "gated":
            h.gates()
        elif name == "scheduled":
            assert slot is not None
            h.add("deployment_scheduled", slot=slot.isoformat(), notified=["alice"],
                  notified_at=NOW.isoformat())
        elif name == "available":
            for role, person in (("engineer", "alice"), ("reviewer", "erin")):
                h.add("availability_confirmed", person, role=role, person_id=person,
                      decision="approve", purpose="availability", channel="prefect-ui")
        elif name == "started":
            h.add("deployment_started", "alice", version="1.0.1", previous_version="1.0.0")
        elif name == "deployed":
            h.add("deployment_succeeded", version="1.0.1")
        elif name == "verified":
            h.add("verification_passed", checks=[])
        elif name == "verify failed":
            h.add("verification_failed", checks=[])
        elif name == "rolling back":
            h.add("rollback_started", to_version="1.0.0", reason="verification failed")
        elif name == "rolled back":
            h.add("rollback_succeeded", to_version="1.0.0", minutes=1, estimate_minutes=10)
        elif name == "staging failed":
            h.add("staging_started", version="1.0.1").add("staging_failed", results=[])
        else:
            raise AssertionError(name)
    return log.events("CHG-1")


PAST, FUTURE = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
READY = ("reviewed", "granted", "staged", "signed", "gated")


@pytest.mark.parametrize(("steps", "slot", "expected"), [
    ((), None, Step.ASK),
        (("reviewed",), None, Step.GRANT),
    (("declined",), None, Step.REJECT),
    (("reviewed", "granted"), None, Step.STAGE),
    (("reviewed", "granted", "staged"), None, Step.SIGN_OFF),
    (("reviewed", "granted", "staged", "sign-off declined"), None, Step.REJECT),
    (("reviewed", "granted", "staging failed"), None, Step.DONE),
    (READY[:-1], None, Step.GATES),
    (READY, None, Step.SCHEDULE),
    ((*READY, "scheduled"), FUTURE, Step.WAIT_FOR_SLOT),
    ((*READY, "scheduled"), PAST, Step.CONFIRM_AVAILABILITY),
    ((*READY, "scheduled", "available"), PAST, Step.DEPLOY),
    ((*READY, "scheduled", "available", "started"), PAST, Step.RECOVER),
    ((*READY, "scheduled", "available", "started", "deployed"), PAST, Step.VERIFY),
    ((*READY, "scheduled", "available", "started", "deployed", "verified"), PAST, Step.CLOSE),
    ((*READY, "scheduled", "available", "started", "deployed", "verify failed"), PAST,
     Step.ROLL_BACK),
    ((*READY, "scheduled", "available", "started", "deployed", "verify failed",
      "rolling back", "rolled back"), PAST, Step.OPEN_INCIDENT),
])
def test_the_step_due_after_each_part_of_the_record(steps: tuple[str, ...],
                                                     slot: datetime | None, expected: Step,
                                                     policy: Policy, roster: Roster) -> None:
    due = next_step(make_change(), history(*steps, slot=slot), policy, roster, NOW)
    assert due.step is expected


def test_the_review_asks_the_eligible_and_the_sign_off_asks_qa(policy: Policy,
                                                               roster: Roster) -> None:
    change = make_change()
    ask = next_step(change, history(), policy, roster, NOW)
    assert (ask.role, ask.purpose, ask.asked) == ("engineering_lead", "review", ("erin",))
    sign = next_step(change, history("reviewed", "granted", "staged"), policy,
                     roster, NOW)
    assert (sign.role, sign.purpose, sign.asked) == ("qa", "staging-sign-off", ("quinn",))


def test_a_decline_is_judged_at_once_and_names_who_declined(policy: Policy,
                                                            roster: Roster) -> None:
    due = next_step(make_change(), history("declined"), policy, roster, NOW)
    assert due.where == "review" and any("erin" in r for r in due.reasons)


def test_a_slot_in_the_future_is_waited_for_and_availability_asks_each_person(
        policy: Policy, roster: Roster) -> None:
    change = make_change()
    wait = next_step(change, history(*READY, "scheduled", slot=FUTURE), policy, roster, NOW)
    assert wait.slot == FUTURE
    first = next_step(change, history(*READY, "scheduled", slot=PAST), policy, roster, NOW)
    assert (first.role, first.asked) == ("engineer", ("alice",))


def test_a_rollback_a_run_started_is_resumed(policy: Policy, roster: Roster) -> None:
    steps = (*READY, "scheduled", "available", "started", "deployed", "verify failed",
             "rolling back")
    due = next_step(make_change(), history(*steps, slot=PAST), policy, roster, NOW)
    assert due.step is Step.ROLL_BACK and due.resume
