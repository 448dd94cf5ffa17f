"""Emergency follow-up: reminders before a deadline, escalations after it or on refusal."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from domain.follow_up import Action, FollowUp, follow_ups
from domain.lifecycle import ChangeRecord, ObligationRecord
from domain.models import Category
from tests.unit.conftest import utc

NOW = utc(2026, 3, 11, 12)
H = timedelta(hours=1)


def obligation(kind: str = "documentation", due_in: timedelta = 12 * H,
               **overrides: Any) -> ObligationRecord:
    """An open obligation owed by alice, due `due_in` after NOW."""
    values: dict[str, Any] = {
        "kind": kind, "due": NOW + due_in, "owner_role": "engineer", "owners": ["alice"],
        "opened_at": utc(2026, 3, 10, 12),
    }
    values.update(overrides)
    return ObligationRecord(**values)


def record(*obligations: ObligationRecord) -> ChangeRecord:
    return ChangeRecord(change_id="CHG-201", state="closed", outcome="succeeded",
                        category=Category.EMERGENCY, opened_at=utc(2026, 3, 10, 9),
                        updated_at=utc(2026, 3, 10, 12), last_seq=12,
                        obligations={o.kind: o for o in obligations})


def notice(action: str, status: str, due_in: timedelta, to: list[str],
           kind: str = "documentation") -> FollowUp:
    return FollowUp(change_id="CHG-201", obligation=kind, action=action, status=status,
                    due=NOW + due_in, to=to)


DONE: dict[str, Any] = {"outcome": "done", "closed_at": NOW - H, "closed_by": "alice"}
REFUSED: dict[str, Any] = {"outcome": "refused", "closed_by": "carol"}


@pytest.mark.parametrize(("obligations", "last_sent", "expected"), [
    pytest.param([obligation(due_in=6 * H + timedelta(seconds=1))], {}, [],
                 id="open-far-from-due"),
    pytest.param([obligation(due_in=6 * H)], {},
                 [notice("reminder", "due_soon", 6 * H, ["alice"])], id="six-hours-before"),
    pytest.param([obligation(due_in=H)], {},
                 [notice("reminder", "due_soon", H, ["alice"])], id="within-six-hours"),
    pytest.param([obligation(due_in=timedelta(0))], {},
                 [notice("reminder", "due_soon", timedelta(0), ["alice"])], id="at-deadline"),
    pytest.param([obligation(due_in=-timedelta(seconds=1))], {},
                 [notice("escalation", "overdue", -timedelta(seconds=1), ["alice", "carol"])],
                 id="just-past-due"),
    pytest.param([obligation(due_in=-2 * H, owners=["alice", "bob"])], {},
                 [notice("escalation", "overdue", -2 * H, ["alice", "bob", "carol"])],
                 id="past-due-to-every-owner-and-ciso"),
    pytest.param([obligation("ciso_signoff", -2 * H, owner_role="ciso", owners=["carol"])], {},
                 [notice("escalation", "overdue", -2 * H, ["carol"], "ciso_signoff")],
                 id="escalation-deduplicated"),
    pytest.param([obligation(due_in=-2 * H, **DONE)], {}, [], id="done-past-due"),
    pytest.param([obligation(due_in=H, **DONE)], {}, [], id="done-due-soon"),
    pytest.param([obligation(due_in=48 * H, **REFUSED)], {},
                 [notice("escalation", "refused", 48 * H, ["alice", "carol"])],
                 id="refused-escalates-before-due"),
    pytest.param([obligation(due_in=-2 * H, **REFUSED)], {},
                 [notice("escalation", "refused", -2 * H, ["alice", "carol"])],
                 id="refused-past-due-says-refused"),
    pytest.param([obligation(due_in=H)], {("documentation", "reminder"): NOW - 2 * H}, [],
                 id="reminder-sent-2h-ago"),
    pytest.param([obligation(due_in=H)],
                 {("documentation", "reminder"): NOW - 24 * H + timedelta(seconds=1)}, [],
                 id="reminder-sent-just-under-repeat-period"),
    pytest.param([obligation(due_in=H)], {("documentation", "reminder"): NOW - 24 * H},
                 [notice("reminder", "due_soon", H, ["alice"])], id="reminder-repeat-period-over"),
    pytest.param([obligation(due_in=-30 * H)], {("documentation", "escalation"): NOW - 25 * H},
                 [notice("escalation", "overdue", -30 * H, ["alice", "carol"])],
                 id="escalation-sent-25h-ago-again"),
    pytest.param([obligation(due_in=-2 * H)], {("documentation", "escalation"): NOW - H}, [],
                 id="escalation-sent-1h-ago"),
    pytest.param([obligation(due_in=-2 * H)], {("documentation", "reminder"): NOW - H},
                 [notice("escalation", "overdue", -2 * H, ["alice", "carol"])],
                 id="only-reminder-sent-still-escalates"),
    pytest.param([obligation(due_in=-2 * H)], {("post_hoc_review", "escalation"): NOW - H},
                 [notice("escalation", "overdue", -2 * H, ["alice", "carol"])],
                 id="other-obligation-escalated-still-escalates"),
    pytest.param([obligation(due_in=-2 * H, **REFUSED)],
                 {("documentation", "escalation"): NOW - H}, [],
                 id="refusal-escalated-1h-ago"),
    pytest.param(
        [obligation("documentation", -2 * H),
         obligation("post_hoc_review", 100 * H, owner_role="engineering_lead", owners=["erin"]),
         obligation("ciso_signoff", 3 * H, owner_role="ciso", owners=["carol"]),
         obligation("approval_confirmation", 5 * H, owner_role="ciso", owners=["carol"],
                    **REFUSED)],
        {},
        [notice("escalation", "overdue", -2 * H, ["alice", "carol"], "documentation"),
         notice("reminder", "due_soon", 3 * H, ["carol"], "ciso_signoff"),
         notice("escalation", "refused", 5 * H, ["carol"], "approval_confirmation")],
        id="several-in-obligation-order"),
    pytest.param(
        [obligation("ciso_signoff", 3 * H, owner_role="ciso", owners=["carol"]),
         obligation("documentation", -2 * H)],
        {},
        [notice("reminder", "due_soon", 3 * H, ["carol"], "ciso_signoff"),
         notice("escalation", "overdue", -2 * H, ["alice", "carol"], "documentation")],
        id="order-is-the-record-order-not-urgency"),
    pytest.param([], {}, [], id="no-obligations"),
])
def test_follow_ups(policy, roster, obligations, last_sent, expected):
    assert follow_ups(record(*obligations), NOW, policy, roster, last_sent) == expected


def test_follow_ups_follow_the_policy(policy, roster):
    rules = policy.emergency.model_copy(update={"remind_before_hours": 1,
                                                "repeat_notice_hours": 2})
    tighter = policy.model_copy(update={"emergency": rules})
    sent: dict[tuple[str, Action], datetime] = {("documentation", "reminder"): NOW - 2 * H}
    assert follow_ups(record(obligation(due_in=2 * H)), NOW, tighter, roster, {}) == []
    assert follow_ups(record(obligation(due_in=H)), NOW, tighter, roster, sent) == [
        notice("reminder", "due_soon", H, ["alice"])]


def test_escalations_go_to_every_holder_of_the_signoff_role(policy, roster):
    rules = policy.emergency.model_copy(update={"signoff_role": "engineering_lead"})
    to_lead = policy.model_copy(update={"emergency": rules})
    assert follow_ups(record(obligation(due_in=-H)), NOW, to_lead, roster, {}) == [
        notice("escalation", "overdue", -H, ["alice", "erin"])]
    assert [p.id for p in roster.holding("ciso")] == ["carol"]  # what the table relies on
