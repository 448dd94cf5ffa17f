"""The change's state machine and the record projected from its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.lifecycle import (
    EVENT_TYPES,
    NEUTRAL_EVENTS,
    TRANSITIONS,
    ChangeRecord,
    IllegalTransition,
    next_state,
    project,
)

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

HAPPY_PATH = ["change_submitted", "approval_requested", "approval_recorded",
              "approval_granted", "staging_started", "staging_passed", "gates_passed",
              "deployment_scheduled", "deployment_started", "deployment_succeeded",
              "verification_passed", "change_closed"]
ROLLBACK_PATH = [*HAPPY_PATH[:10], "verification_failed", "rollback_started",
                 "rollback_succeeded", "incident_opened", "change_closed"]


def replay(types: list[str], payloads: dict[int, dict] | None = None) -> ChangeRecord:
    record = None
    for i, event_type in enumerate(types):
        payload = (payloads or {}).get(i, {})
        record = project(record, "CHG-1", event_type, payload, T0 + timedelta(minutes=i), i + 1)
    assert record is not None
    return record


@pytest.mark.parametrize("path, state, outcome", [
    (HAPPY_PATH[:1], "submitted", None),
    (HAPPY_PATH[:4], "approved", None),
    (HAPPY_PATH[:7], "ready", None),
    (HAPPY_PATH[:11], "succeeded", "succeeded"),
    (HAPPY_PATH, "closed", "succeeded"),
    (ROLLBACK_PATH[:13], "rolled_back", "rolled_back"),
    (ROLLBACK_PATH, "closed", "rolled_back"),
    (["validation_failed", "validation_failed", "change_submitted"], "submitted", None),
    (["change_submitted", "approval_requested", "change_rejected"], "rejected", "rejected"),
    (["change_submitted", "approval_requested", "approval_expired"], "expired", "expired"),
    (["change_submitted", "approval_granted", "gates_blocked", "gates_passed"], "ready", None),
    (["change_submitted", "approval_granted", "staging_started", "staging_failed"],
     "failed", "failed"),
    ([*HAPPY_PATH[:9], "deployment_failed", "rollback_started", "rollback_failed"],
     "failed", "failed"),
    (["change_submitted", "approval_requested", "change_cancelled"], "cancelled", "cancelled"),
])
def test_allowed_paths_reach_their_state(path: list[str], state: str,
                                         outcome: str | None) -> None:
    record = replay(path)
    assert (record.state, record.outcome) == (state, outcome)


@pytest.mark.parametrize("path, refused", [
    ([], "approval_granted"),                       # nothing before submission
    ([], "note"),                                   # evidence needs a change
    (["change_submitted"], "deployment_started"),   # deploy before approval and gates
    (["change_submitted", "approval_granted"], "deployment_started"),  # before gates
    (["change_submitted", "approval_granted", "gates_blocked"], "deployment_started"),
    (HAPPY_PATH[:10], "change_closed"),             # deployed but not verified
    (HAPPY_PATH[:11], "rollback_started"),          # verified changes are not rolled back
    (HAPPY_PATH, "deployment_started"),             # a closed change never deploys again
    (["change_submitted", "approval_requested", "change_rejected"], "approval_granted"),
    (["change_submitted", "approval_requested", "approval_expired"], "approval_recorded"),
    (["change_submitted"], "change_submitted"),     # submitted twice
    (["change_submitted"], "made_up_event"),
])
def test_refused_transitions_name_what_may_follow(path: list[str], refused: str) -> None:
    record = replay(path) if path else None
    with pytest.raises(IllegalTransition) as err:
        project(record, "CHG-1", refused, {}, T0, 99)
    assert refused in str(err.value)


def test_projection_keeps_the_section_7_record() -> None:
    record = replay(ROLLBACK_PATH, payloads={
        0: {"summary": "Paginate", "description": "Pages of 50", "category": "normal",
            "service": "sample", "version": "1.1.0", "author": "alice"},
        2: {"role": "engineering_lead", "person_id": "erin", "decision": "approve"},
        13: {"incident_id": "INC-7", "priority": 3},
    })
    assert record.author == "alice" and record.version == "1.1.0"
    assert record.approvers == ["engineering_lead:erin"]
    assert record.deployed_at == T0 + timedelta(minutes=9)
    assert record.incidents == ["INC-7"]
    assert record.opened_at == T0 and record.last_seq == len(ROLLBACK_PATH)


def test_a_declined_approval_is_not_listed_as_an_approver() -> None:
    record = replay(["change_submitted", "approval_recorded"], payloads={
        1: {"role": "qa", "person_id": "quinn", "decision": "decline"}})
    assert record.approvers == []


@settings(deadline=None)
@given(st.lists(st.sampled_from(sorted(EVENT_TYPES)), max_size=30))
def test_any_event_sequence_is_either_refused_or_follows_the_table(types: list[str]) -> None:
    state: str | None = None
    for event_type in types:
        try:
            new = next_state(state, event_type)
        except IllegalTransition:
            assert (event_type in NEUTRAL_EVENTS and state is None) or \
                state not in TRANSITIONS.get(event_type, {})
            continue
        if event_type in NEUTRAL_EVENTS:
            assert new == state
        else:
            assert new == TRANSITIONS[event_type][state]
        state = new
    # A change that deployed can only end through verification or a rollback.
    if state == "deployed":
        assert "deployment_succeeded" in types
