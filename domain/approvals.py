"""Who must approve a change, and whether the approvals given are valid (sections 1, 2, 5, 6).

Separation of duties and attribution are checked here, against the roster: an approval
counts only when its person is in the roster, holds the role, is not a shared account,
is not the change's author (except a standard change's self-approval, which only the
author can give), and has not already filled another role of the same change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from domain.history import approvals_of
from domain.models import (
    Approval,
    Category,
    ChangeEvent,
    ChangeRequest,
    Decision,
    Frozen,
    Person,
    Roster,
)
from domain.policy import ApprovalRequirement, Policy
from domain.security import security_review_reasons

SECURITY_REVIEW_CATEGORIES = frozenset({Category.NORMAL, Category.MAJOR})
"""Categories that get Security's review when the change touches a sensitive area.

Section 2 (the normal process, which a major change also goes through) asks for it.
A standard change is pre-approved by definition (certificate renewals would otherwise
always need Security), and an emergency is approved by the CISO, who owns security and
is the retroactive signer, so neither gets an extra Security approval.
"""

VERBAL_CHANNEL = "verbal"
"""`Approval.channel` of an approval given by voice and recorded by someone else."""


class ApprovalVerdict(Frozen):
    """Whether a change's approvals are complete, and why not.

    Attributes:
        satisfied: every required role has a valid approval and nobody declined.
        declined: someone declined (a decline always stops the change).
        missing: required roles without a valid approval, in requirement order.
        problems: one human-readable reason per approval that did not count, or decline.
        duties: those of `problems` that break separation of duties (`Refusal.duty`).
        approvers: role -> person id of the approvals that counted.
    """

    satisfied: bool
    declined: bool
    missing: list[str] = []
    problems: list[str] = []
    duties: list[str] = []
    approvers: dict[str, str] = {}


def required_approvals(change: ChangeRequest, policy: Policy) -> list[ApprovalRequirement]:
    """The approvals `change` needs: its category's, plus Security's when triggered.

    Security (`policy.security_review.role`) is added for categories in
    `SECURITY_REVIEW_CATEGORIES` when `security_review_reasons` finds any reason, unless
    the category already requires that role.
    """
    required = list(policy.categories[change.category].approvals)
    role = policy.security_review.role
    if (change.category in SECURITY_REVIEW_CATEGORIES
            and all(req.role != role for req in required)
            and security_review_reasons(change, policy)):
        required.append(ApprovalRequirement(role=role))
    return required


def eligible_approvers(requirement: ApprovalRequirement, change: ChangeRequest,
                       roster: Roster, *, fallback: bool = False) -> list[Person]:
    """Who may give `requirement` for `change`: whom to ask, in id order.

    Holders of the role (of its `fallback_role` when `fallback` is True) who are not
    shared accounts; never the author, except for a self-approval, which only the author
    may give.
    """
    role = requirement.fallback_role if fallback else requirement.role
    if role is None:
        return []
    holders = roster.holding(role)
    if requirement.self_approval:
        return [p for p in holders if p.id == change.author]
    return [p for p in holders if not change.by(p.id)]


def _who(person_id: str, person: Person | None) -> str:
    return f"{person.name} ({person.id})" if person else repr(person_id)


def _match(approval: Approval, required: Sequence[ApprovalRequirement]
           ) -> tuple[ApprovalRequirement | None, bool]:
    """The requirement an approval is for, and whether it is given as a fallback."""
    for req in required:
        if req.role == approval.role:
            return req, False
    for req in required:
        if req.fallback_role == approval.role:
            return req, True
    return None, False


class Refusal(NamedTuple):
    """Why an approval does not count; `duty` when it breaks separation of duties.

    Separation of duties (sections 1 and 6): attributable to one person (no shared
    account), never the author or a writer of the change (but a standard self-approval),
    a verbal approval recorded by someone else who heard it, one person per role.
    """

    text: str
    duty: bool = False


def _refusal(approval: Approval, req: ApprovalRequirement, fallback: bool,
             change: ChangeRequest, person: Person | None) -> Refusal | None:
    """Why a well-targeted approval does not count, or None when it does."""
    who, role = _who(approval.person_id, person), approval.role
    if person is None:
        return Refusal(f"{who} approved as {role!r} but is not in the roster")
    if person.shared_account:
        return Refusal(f"{who} is a shared account and cannot approve as {role!r} (every "
                       "approval must be attributable to one person)", duty=True)
    if role not in person.roles:
        hint = (f"; a fallback approval is recorded as {req.fallback_role!r} with a reason"
                if req.fallback_role and req.fallback_role in person.roles else "")
        return Refusal(f"{who} does not hold role {role!r}{hint}")
    if req.self_approval and person.id != change.author:
        return Refusal(f"{who} cannot give the self-approval as {role!r}: only the change's "
                       f"author ({change.author}) can")
    if not req.self_approval and person.id == change.author:
        return Refusal(f"{who} is the change's author and cannot approve it as {role!r} "
                       "(separation of duties)", duty=True)
    if not req.self_approval and change.by(person.id):
        return Refusal(f"{who} wrote code in the change's pull request and cannot approve "
                       f"it as {role!r} (separation of duties)", duty=True)
    if req.verbal and approval.channel != VERBAL_CHANNEL:
        return Refusal(f"{who} approved as {role!r} via {approval.channel!r}, but this "
                       f"approval must be given verbally (channel {VERBAL_CHANNEL!r})")
    if req.verbal and approval.recorded_by in (None, person.id):
        return Refusal(f"{who}'s verbal approval as {role!r} must be recorded by someone "
                       "else, who heard it (the approver confirms it afterwards)", duty=True)
    if req.verbal and approval.recorded_by and change.by(approval.recorded_by):
        return Refusal(f"{who}'s verbal approval as {role!r} cannot be recorded by "
                       f"{approval.recorded_by}, who wrote the change: two people other than "
                       "its writers must take part (separation of duties)", duty=True)
    if fallback and not (approval.fallback_reason or "").strip():
        return Refusal(f"{who} approved as {role!r} in place of {req.role!r} without a "
                       f"fallback_reason (why the {req.role} was unavailable)")
    return None


def ineligibility(change: ChangeRequest, decision: Approval, policy: Policy,
                  roster: Roster) -> str | None:
    """Why `decision`'s person may not decide (approve or decline) in its role, or None.

    Only the person and the role are judged, not what else was given: the reason a
    decline by them is noted as not eligible, and a decision taken elsewhere (Jira) is
    refused for.
    """
    req, fallback = _match(decision, required_approvals(change, policy))
    refused = req and _refusal(decision, req, fallback, change, roster.get(decision.person_id))
    return refused.text if refused else None


def refusal_of(change: ChangeRequest, candidate: Approval, given: Sequence[Approval],
               policy: Policy, roster: Roster) -> str | None:
    """Why `candidate` would not count beside the approvals `given`, or None.

    The judge is `check_approvals`: the reason is what it finds wrong once `candidate` is
    added (the author, a missing role, a shared account, a second role for one person).
    """
    before = check_approvals(change, given, policy, roster).problems
    after = check_approvals(change, [*given, candidate], policy, roster).problems
    new = list(after)
    for problem in before:
        if problem in new:
            new.remove(problem)
    return "; ".join(new) or None


def verbal_recorders(change: ChangeRequest, policy: Policy, roster: Roster) -> list[Person]:
    """Who may record a verbal approval, in id order.

    Holders of the policy's recorder roles, never the author and never a shared account
    (the approver themselves is refused when the approval is judged).
    """
    people = {p.id: p for role in policy.emergency.recorder_roles for p in roster.holding(role)}
    return [p for _, p in sorted(people.items()) if not change.by(p.id)]


def _recorder_refusal(approval: Approval, policy: Policy, roster: Roster) -> Refusal | None:
    """Why the recorder of a verbal approval may not record it, or None."""
    recorder = roster.get(approval.recorded_by or "")
    who = _who(approval.recorded_by or "", recorder)
    roles = policy.emergency.recorder_roles
    if recorder is None:
        return Refusal(f"the recorder {who} is not in the roster")
    if recorder.shared_account:
        return Refusal(f"the recorder {who} is a shared account (a recording must be "
                       "attributable)", duty=True)
    if not set(roles) & set(recorder.roles):
        return Refusal(f"the recorder {who} holds none of the recorder roles "
                       f"({', '.join(roles) or 'none configured'}; policy "
                       "emergency.recorder_roles)")
    return None


def check_approvals(change: ChangeRequest, approvals: Sequence[Approval], policy: Policy,
                    roster: Roster) -> ApprovalVerdict:
    """Judge the approvals given for `change` against what it requires.

    Approvals are taken in time order (`Approval.at`). Each requirement is filled by the
    first approval that counts (see `_refusal` for what does not). An approval in the
    requirement's `fallback_role` fills it only with a non-blank `fallback_reason`.
    A person who already filled one role cannot fill another. Any decline, by anyone,
    makes the verdict declined and unsatisfied: stopping a change is always safe, and the
    problem text says if the decliner was not an eligible approver.

    Args:
        change: the change request.
        approvals: decisions recorded for it, in any order.
        policy: the policy (categories, Security review trigger).
        roster: who holds which role.

    Returns:
        The verdict; `satisfied` only when no role is missing and nobody declined.
    """
    required = required_approvals(change, policy)
    filled: dict[str, str] = {}  # requirement role -> person id
    roles_of: dict[str, str] = {}  # person id -> role they filled
    problems: list[str] = []
    duties: list[str] = []
    declined = False
    for approval in sorted(approvals, key=lambda a: a.at):
        person = roster.get(approval.person_id)
        who, role = _who(approval.person_id, person), approval.role
        req, fallback = _match(approval, required)
        if approval.decision is Decision.DECLINE:
            declined = True
            why = f": {approval.comment}" if approval.comment.strip() else ""
            ineligible = ineligibility(change, approval, policy, roster)
            note = f" (not an eligible approver: {ineligible})" if ineligible else ""
            problems.append(f"{who} declined as {role!r}{why}{note}")
            continue
        if req is None:
            problems.append(f"{who} approved as {role!r}, a role this change does not need "
                            f"(needed: {', '.join(r.role for r in required)})")
            continue
        refused = (_refusal(approval, req, fallback, change, person)
                   or (_recorder_refusal(approval, policy, roster) if req.verbal else None))
        if refused is None and req.role in filled:
            continue  # a second valid approval for a filled role adds nothing
        if refused is None and approval.person_id in roles_of:
            refused = Refusal(f"{who} already approved as {roles_of[approval.person_id]!r} "
                              f"and cannot also approve as {role!r} (one person per role)",
                              duty=True)
        if refused:
            problems.append(refused.text)
            duties += [refused.text] * refused.duty
        else:
            filled[req.role] = approval.person_id
            roles_of[approval.person_id] = role
    missing = [req.role for req in required if req.role not in filled]
    return ApprovalVerdict(satisfied=not missing and not declined, declined=declined,
                           missing=missing, problems=problems, duties=duties,
                           approvers=filled)


def recorded_verdict(change: ChangeRequest, events: Sequence[ChangeEvent], policy: Policy,
                     roster: Roster) -> ApprovalVerdict:
    """The domain's judgement of the approvals recorded for the change's required roles."""
    needed = {role for r in required_approvals(change, policy)
              for role in (r.role, r.fallback_role) if role}
    given = [x for x in approvals_of(events) if x.role in needed]
    return check_approvals(change, given, policy, roster)
