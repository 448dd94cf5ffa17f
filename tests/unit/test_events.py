"""Event types and their payload models: every type has one, and a wrong payload is named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.events import (
    PAYLOADS,
    Decided,
    EventType,
    GatesJudged,
    PayloadError,
    check_payload,
    payload_of,
)
from domain.lifecycle import EVENT_TYPES, NEUTRAL_EVENTS, TRANSITIONS
from domain.models import ChangeEvent, Decision, GateStatus
from tests.support.history import submission


def test_every_event_type_has_a_payload_model_and_a_place_in_the_state_machine() -> None:
    assert set(PAYLOADS) == set(EventType) == EVENT_TYPES
    assert set(TRANSITIONS) | NEUTRAL_EVENTS == set(EventType)
    assert not set(TRANSITIONS) & NEUTRAL_EVENTS


@pytest.mark.parametrize(("event_type", "payload", "words"), [
    ("note", {}, "'note' is not a Note: text: Field required"),
    ("note", {"text": "t", "extra": 1}, "extra: Extra inputs are not permitted"),
    ("change_closed", {"outcome": 3}, "outcome: Input should be a valid string"),
    ("approval_recorded", {"role": "qa", "person_id": "quinn", "purpose": "review",
                           "decision": "approved"},
     "decision: Input should be 'approve' or 'decline'"),
    ("gates_passed", {"gates": [{"gate": "code_review", "status": "green", "reason": ""}]},
     "gates.0.status: Input should be"),
    ("change_submitted", {**submission("CHG-1"), "change": {"id": "CHG-1"}},
     "change.summary: Field required"),
    ("made_up", {}, "unknown event type 'made_up'"),
])
def test_a_payload_that_is_not_its_types_is_named(event_type: str, payload: dict[str, object],
                                                  words: str) -> None:
    with pytest.raises(PayloadError, match=words.replace("(", r"\(")):
        check_payload(event_type, payload)


def test_a_recorded_payload_is_read_through_its_model() -> None:
    event = ChangeEvent(seq=1, change_id="CHG-1", type=EventType.APPROVAL_RECORDED,
                        at=datetime(2026, 1, 1, tzinfo=UTC), actor="erin", prev_hash="",
                        hash="", payload={"role": "engineering_lead", "person_id": "erin",
                                          "purpose": "review", "decision": "approve"})
    decided = payload_of(event, Decided)
    assert (decided.role, decided.decision, decided.channel) == (
        "engineering_lead", Decision.APPROVE, "unknown")
    with pytest.raises(TypeError, match="approval_recorded event's payload is not a Gates"):
        payload_of(event, GatesJudged)
    gates = check_payload("gates_blocked", {"gates": [
        {"gate": "code_review", "status": "failed", "reason": "no review"}]})
    assert isinstance(gates, GatesJudged) and gates.gates[0].status is GateStatus.FAILED
