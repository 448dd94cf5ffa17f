"""What an emergency change owes after it is deployed (policy section 5).

Section 5: document the change in the emergency change log within 24 hours (step 3),
conduct a post-hoc review within 5 business days (step 4), and file the change record
with retroactive sign-off from the CISO (step 5). The policy gives step 5 no deadline of
its own; since the record is filed with the review's outcome, the sign-off is due when
the review is due, the latest point at which the emergency's record can be complete.

A verbal approval (step 1) is recorded by someone who heard it; the approver confirms
it afterwards, by the documentation deadline, so an unconfirmed one is an open item too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from domain.calendar import add_business_days, require_aware
from domain.models import Frozen
from domain.policy import Policy

ObligationKind = Literal["approval_confirmation", "documentation", "post_hoc_review",
                         "ciso_signoff"]
ObligationStatus = Literal["open", "due_soon", "overdue", "met", "late"]

DOCUMENTATION_ROLE = "engineer"
"""Who documents the emergency: the engineer who made it (the change's author)."""

DUE_SOON = timedelta(hours=4)
"""Default warning period before a deadline."""


class Obligation(Frozen):
    """One thing an emergency change owes, by when, and which role owes it."""

    kind: ObligationKind
    due: datetime
    owner_role: str


def emergency_obligations(deployed_at: datetime, policy: Policy) -> list[Obligation]:
    """The three follow-ups of an emergency change deployed at `deployed_at`.

    Documentation is due `document_within_hours` elapsed hours after deployment; the
    post-hoc review `review_within_business_days` business days after it (same local time
    of day, holidays of the policy's schedule skipped); the sign-off with the review.

    Args:
        deployed_at: when the emergency change reached production (aware).
        policy: the policy (emergency section, schedule's time zone and holidays).

    Returns:
        Obligations in the order documentation, post_hoc_review, ciso_signoff; dues in UTC.

    Raises:
        ValueError: `deployed_at` is naive.
    """
    require_aware(deployed_at, "deployed_at")
    rules, schedule = policy.emergency, policy.schedule
    documented_by = (deployed_at.astimezone(UTC)
                     + timedelta(hours=rules.document_within_hours))
    reviewed_by = add_business_days(deployed_at, rules.review_within_business_days,
                                    schedule.holidays, schedule.zone)
    return [
        Obligation(kind="documentation", due=documented_by, owner_role=DOCUMENTATION_ROLE),
        Obligation(kind="post_hoc_review", due=reviewed_by, owner_role=rules.review_role),
        Obligation(kind="ciso_signoff", due=reviewed_by, owner_role=rules.signoff_role),
    ]


def confirmation_obligation(recorded_at: datetime, approver_role: str,
                            policy: Policy) -> Obligation:
    """The approver's confirmation of a verbal approval recorded at `recorded_at`.

    Due with the documentation (`document_within_hours` after it was recorded): the
    emergency's entry is not complete while its approval is only someone's word.
    """
    due = (require_aware(recorded_at, "recorded_at").astimezone(UTC)
           + timedelta(hours=policy.emergency.document_within_hours))
    return Obligation(kind="approval_confirmation", due=due, owner_role=approver_role)


def obligation_status(obligation: Obligation, closed_at: datetime | None, now: datetime,
                      soon: timedelta = DUE_SOON) -> ObligationStatus:
    """Where an obligation stands at `now`.

    A deadline is inclusive: closing exactly at `due` is on time.

    Args:
        obligation: the obligation.
        closed_at: when it was fulfilled, None while open.
        now: the current instant (aware).
        soon: how long before `due` an open obligation counts as due soon.

    Returns:
        `met` (closed by the deadline), `late` (closed after it), `overdue` (open past
        it), `due_soon` (open, within `soon` of it) or `open`.
    """
    require_aware(now, "now")
    if closed_at is not None:
        return "met" if require_aware(closed_at, "closed_at") <= obligation.due else "late"
    if now > obligation.due:
        return "overdue"
    if obligation.due - now <= soon:
        return "due_soon"
    return "open"
