from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.emergency import Obligation, emergency_obligations, obligation_status
from tests.unit.conftest import berlin, utc


@pytest.mark.parametrize(("deployed_at", "documentation", "review"), [
    pytest.param(berlin(2026, 3, 10, 15), berlin(2026, 3, 11, 15), berlin(2026, 3, 17, 15),
                 id="tuesday"),
    pytest.param(berlin(2026, 12, 18, 15), berlin(2026, 12, 19, 15), berlin(2026, 12, 29, 15),
                 id="friday-before-christmas"),
    pytest.param(berlin(2026, 12, 30, 22), berlin(2026, 12, 31, 22), berlin(2027, 1, 8, 22),
                 id="over-new-year-holidays"),
    pytest.param(berlin(2026, 3, 28, 12), utc(2026, 3, 29, 11), berlin(2026, 4, 3, 12),
                 id="saturday-over-spring-dst"),
    pytest.param(utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 23, 30),
                 berlin(2026, 10, 30, 1, 30), id="utc-saturday-night-is-berlin-sunday"),
])
def test_emergency_obligations(policy, deployed_at, documentation, review):
    obligations = emergency_obligations(deployed_at, policy)
    assert obligations == [
        Obligation(kind="documentation", due=documentation, owner_role="engineer"),
        Obligation(kind="post_hoc_review", due=review, owner_role="engineering_lead"),
        Obligation(kind="ciso_signoff", due=review, owner_role="ciso"),
    ]
    assert all(o.due.tzinfo is UTC for o in obligations)
    assert obligations[0].due - deployed_at == timedelta(hours=24)  # elapsed, even over DST


def test_emergency_obligations_follow_the_policy(policy):
    looser = policy.model_copy(update={"emergency": policy.emergency.model_copy(
        update={"document_within_hours": 48, "review_within_business_days": 1})})
    doc, review, signoff = emergency_obligations(berlin(2026, 3, 13, 10), looser)
    assert (doc.due, review.due, signoff.due) == (berlin(2026, 3, 15, 10),
                                                  berlin(2026, 3, 16, 10),
                                                  berlin(2026, 3, 16, 10))


def test_emergency_obligations_refuse_naive(policy):
    with pytest.raises(ValueError, match="deployed_at must be timezone-aware"):
        emergency_obligations(datetime(2026, 3, 10, 15), policy)


DUE = Obligation(kind="documentation", due=utc(2026, 3, 10, 12), owner_role="engineer")


@pytest.mark.parametrize(("closed_at", "now", "soon", "status"), [
    pytest.param(utc(2026, 3, 10, 11), utc(2026, 3, 12), None, "met", id="met"),
    pytest.param(utc(2026, 3, 10, 12), utc(2026, 3, 12), None, "met", id="met-at-deadline"),
    pytest.param(utc(2026, 3, 10, 12, 1), utc(2026, 3, 12), None, "late", id="late"),
    pytest.param(berlin(2026, 3, 10, 12, 30), utc(2026, 3, 12), None, "met",
                 id="met-in-local-time"),
    pytest.param(None, utc(2026, 3, 10, 12, 0, 1), None, "overdue", id="overdue"),
    pytest.param(None, utc(2026, 3, 10, 12), None, "due_soon", id="at-deadline-due-soon"),
    pytest.param(None, utc(2026, 3, 10, 8), None, "due_soon", id="four-hours-before"),
    pytest.param(None, utc(2026, 3, 10, 7, 59), None, "open", id="just-over-four-hours"),
    pytest.param(None, utc(2026, 3, 9), None, "open", id="open"),
    pytest.param(None, utc(2026, 3, 10, 10), timedelta(hours=1), "open", id="custom-soon"),
    pytest.param(None, utc(2026, 3, 10, 11), timedelta(hours=1), "due_soon",
                 id="custom-soon-reached"),
])
def test_obligation_status(closed_at, now, soon, status):
    args = (DUE, closed_at, now) if soon is None else (DUE, closed_at, now, soon)
    assert obligation_status(*args) == status


def test_obligation_status_refuses_naive():
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        obligation_status(DUE, None, datetime(2026, 3, 10, 12))
