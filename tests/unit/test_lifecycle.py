"""The change's state machine and the record projected from its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import PayloadError
from domain.lifecycle import (
    EVENT_TYPES,
    NEUTRAL_EVENTS,
    TRANSITIONS,
    ChangeRecord,
    IllegalTransition,
    ObligationRecord,
    next_state,
    project,
)
from domain.models import Category
from tests.support.history import submission

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

HAPPY_PATH = ["change_submitted", "approval_requested", "approval_recorded",
              "approval_granted", "staging_started", "staging_passed", "gates_passed",
              "deployment_scheduled", "deployment_started", "deployment_succeeded",
              "verification_passed", "change_closed"]
ROLLBACK_PATH = [*HAPPY_PATH[:10], "verification_failed", "rollback_started",
                 "rollback_succeeded", "incident_opened", "change_closed"]


DEFAULTS: dict[str, dict[str, object]] = {
    "change_submitted": submission("CHG-1"),
    "validation_failed": {"problems": ["no rollback plan"]},
    "approval_recorded": {"role": "engineering_lead", "person_id": "erin",
                          "decision": "approve", "purpose": "review"},
    "incident_opened": {"incident_id": "INC-1", "priority": 3, "summary": "rolled back",
                        "review_due": "2026-12-03T09:00:00+00:00"},
    "change_reclassified": {"from": "standard", "to": "normal", "reasons": ["misfit"]},
    "obligation_opened": {"obligation": "documentation", "due": "2026-11-27T09:00:00+00:00",
                          "owner_role": "engineer", "owners": ["alice"]},
    "obligation_responded": {"role": "engineer", "purpose": "documentation",
                             "person_id": "alice", "decision": "approve"},
}
"""A valid payload of each type the record reads; a test's payload is laid over it."""


def full(event_type: str, payload: dict[str, object]) -> dict[str, object]:
    return {**DEFAULTS.get(event_type, {}), **payload}


def replay(types: list[str], payloads: dict[int, dict] | None = None) -> ChangeRecord:
    record = None
    for i, event_type in enumerate(types):
        payload = full(event_type, (payloads or {}).get(i, {}))
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
        project(record, "CHG-1", refused, full(refused, {}), T0, 99)
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
        if event_type == "ticket_snapshot" and state is None:
            assert new == "draft"  # a ticket seen before it is submitted
        elif event_type in NEUTRAL_EVENTS:
            assert new == state
        else:
            assert new == TRANSITIONS[event_type][state]
        state = new
    # A change that deployed can only end through verification or a rollback.
    if state == "deployed":
        assert "deployment_succeeded" in types


SUBMITTED = {"summary": "Renew the TLS certificate", "description": "Yearly renewal",
             "category": "standard", "service": "sample", "version": "1.2.4",
             "author": "alice"}


@pytest.mark.parametrize("before, to, category, reclassified_from", [
    (SUBMITTED, "normal", Category.NORMAL, Category.STANDARD),
    ({**SUBMITTED, "category": "emergency"}, "normal", Category.NORMAL, Category.EMERGENCY),
    ({**SUBMITTED, "category": "normal"}, "major", Category.MAJOR, Category.NORMAL),
], ids=["standard-to-normal", "emergency-to-normal", "normal-to-major"])
def test_reclassification_keeps_where_the_change_came_from(before: dict[str, str], to: str,
                                                           category: Category,
                                                           reclassified_from: Category | None,
                                                           ) -> None:
    record = replay(["change_submitted", "change_reclassified"],
                    payloads={0: before, 1: {"from": before["category"], "to": to}})
    assert (record.state, record.category, record.reclassified_from) == (
        "submitted", category, reclassified_from)
    assert (record.summary, record.author, record.last_seq) == (
        "Renew the TLS certificate", "alice", 2)


def test_a_reclassified_change_goes_on_to_review() -> None:
    record = replay(["change_submitted", "change_reclassified", "approval_requested"],
                    payloads={0: SUBMITTED, 1: {"to": "normal"}})
    assert (record.state, record.category, record.reclassified_from) == (
        "in_review", Category.NORMAL, Category.STANDARD)


@pytest.mark.parametrize("payload, words", [
    ({"from": "standard", "to": "bogus", "reasons": []}, "to: Input should be 'standard'"),
    ({"from": "standard", "reasons": []}, "to: Field required"),
], ids=["unknown", "missing"])
def test_reclassification_needs_a_category(payload: dict[str, str], words: str) -> None:
    record = replay(["change_submitted"], payloads={0: SUBMITTED})
    with pytest.raises(PayloadError, match=words):
        project(record, "CHG-1", "change_reclassified", payload, T0, 2)


@pytest.mark.parametrize("path", [
    [],
    ["validation_failed"],
    ["change_submitted", "approval_requested"],
    ["change_submitted", "approval_granted"],
    ["change_submitted", "approval_requested", "change_rejected"],
    HAPPY_PATH,
], ids=["before-submission", "needs-information", "in-review", "approved", "rejected",
        "closed"])
def test_reclassification_only_from_submitted(path: list[str]) -> None:
    record = replay(path) if path else None
    with pytest.raises(IllegalTransition, match="'change_reclassified' cannot follow state"):
        project(record, "CHG-1", "change_reclassified", full("change_reclassified", {}), T0, 99)


DUE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
OPENED = {"obligation": "documentation", "due": DUE.isoformat(), "owner_role": "engineer",
          "owners": ["alice"]}
SIGNOFF = {"obligation": "ciso_signoff", "due": (DUE + timedelta(days=6)).isoformat(),
           "owner_role": "ciso", "owners": ["carol"]}
EMERGENCY_PATH = ["change_submitted", "approval_granted", "gates_passed", "deployment_started",
                  "deployment_succeeded", "verification_passed", "change_closed"]


def at(i: int) -> datetime:
    """When `replay` records the event at index `i`."""
    return T0 + timedelta(minutes=i)


def test_obligation_opened_is_recorded_on_a_closed_change() -> None:
    record = replay([*EMERGENCY_PATH, "obligation_opened", "obligation_opened"],
                    payloads={7: OPENED, 8: SIGNOFF})
    assert (record.state, record.outcome) == ("closed", "succeeded")
    assert list(record.obligations) == ["documentation", "ciso_signoff"]
    assert record.obligations["documentation"] == ObligationRecord(
        kind="documentation", due=DUE, owner_role="engineer", owners=["alice"],
        opened_at=at(7))
    signoff = record.obligations["ciso_signoff"]
    assert (signoff.due, signoff.owner_role, signoff.owners, signoff.opened_at) == (
        DUE + timedelta(days=6), "ciso", ["carol"], at(8))
    assert (signoff.closed_at, signoff.closed_by, signoff.outcome, signoff.done) == (
        None, None, None, False)


@pytest.mark.parametrize("answers, closed_at, closed_by, outcome", [
    ([("approve", "alice")], at(2), "alice", "done"),
    ([("decline", "alice")], None, "alice", "refused"),
    ([("decline", "alice"), ("approve", "alice")], at(3), "alice", "done"),
    ([("approve", "bob")], at(2), "bob", "done"),
], ids=["approve-closes", "decline-refuses-and-stays-open", "approve-after-refusal",
        "closed-by-who-answered"])
def test_obligation_responded(answers: list[tuple[str, str]], closed_at: datetime | None,
                              closed_by: str, outcome: str) -> None:
    responses = {2 + i: {"purpose": "documentation", "decision": decision, "person_id": who}
                 for i, (decision, who) in enumerate(answers)}
    record = replay(["change_submitted", "obligation_opened",
                     *["obligation_responded"] * len(answers)],
                    payloads={1: OPENED, **responses})
    answered = record.obligations["documentation"]
    assert (answered.closed_at, answered.closed_by, answered.outcome) == (
        closed_at, closed_by, outcome)
    assert answered.done is (outcome == "done")
    assert (answered.kind, answered.due, answered.owners, answered.opened_at) == (
        "documentation", DUE, ["alice"], at(1))


def test_obligation_responded_leaves_other_obligations_alone() -> None:
    record = replay(["change_submitted", "obligation_opened", "obligation_opened",
                     "obligation_responded", "obligation_responded"],
                    payloads={1: OPENED, 2: SIGNOFF,
                              3: {"purpose": "ciso_signoff", "decision": "approve",
                                  "person_id": "carol"},
                              4: {"purpose": "post_hoc_review", "decision": "approve",
                                  "person_id": "erin"}})
    assert list(record.obligations) == ["documentation", "ciso_signoff"]
    assert record.obligations["documentation"].outcome is None
    assert (record.obligations["ciso_signoff"].outcome,
            record.obligations["ciso_signoff"].closed_by) == ("done", "carol")


@pytest.mark.parametrize("path, payloads", [
    (HAPPY_PATH, {}),
    (ROLLBACK_PATH, {}),
    ([*EMERGENCY_PATH, "obligation_opened"], {len(EMERGENCY_PATH): OPENED}),
], ids=["succeeded", "rolled-back", "emergency-with-obligation"])
def test_approval_requested_after_closing_keeps_it_closed(path: list[str],
                                                          payloads: dict[int, dict[str, str]],
                                                          ) -> None:
    closed = replay(path, payloads=payloads)
    assert closed.state == "closed"
    after = project(closed, "CHG-1", "approval_requested", {"purpose": "documentation"},
                    T0 + timedelta(days=1), closed.last_seq + 1)
    assert (after.state, after.outcome) == ("closed", closed.outcome)
    assert after.obligations == closed.obligations


def _history(*steps: tuple[str, dict[str, object]]) -> ChangeRecord:
    record = None
    for seq, (event_type, payload) in enumerate(steps, 1):
        record = project(record, "CHG-1", event_type, full(event_type, dict(payload)), T0, seq)
    assert record is not None
    return record


REVIEW = {"role": "engineering_lead", "person_id": "erin", "decision": "approve",
          "purpose": "review"}
SIGN_OFF = {"role": "qa", "person_id": "quinn", "decision": "approve",
            "purpose": "staging-sign-off"}


def test_a_review_decision_once_review_is_over_is_refused() -> None:
    testing = [("change_submitted", {}), ("approval_recorded", REVIEW),
               ("approval_granted", {}), ("staging_started", {})]
    assert _history(*testing, ("approval_recorded", SIGN_OFF)).approvers == [
        "engineering_lead:erin", "qa:quinn"]
    with pytest.raises(IllegalTransition, match="review is over"):
        _history(*testing, ("approval_recorded", REVIEW))
    with pytest.raises(IllegalTransition, match="staging sign-off cannot be recorded"):
        _history(("change_submitted", {}), ("approval_recorded", SIGN_OFF))


def test_a_decision_that_is_neither_approve_nor_decline_is_refused() -> None:
    record = replay(["change_submitted", "obligation_opened"])
    with pytest.raises(PayloadError, match="decision: Input should be 'approve' or 'decline'"):
        project(record, "CHG-1", "obligation_responded",
                full("obligation_responded", {"decision": "maybe"}), T0, 3)
