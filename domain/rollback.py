"""Whether a rollback plan is complete (policy section 4).

"Every production change has a documented rollback plan before deployment", with a
trigger, steps, an owner, verification steps and a time estimate. Completeness is a
rule rather than a type so that an incomplete plan can be held and its gaps listed back
to the author.
"""

from __future__ import annotations

from domain.models import RollbackPlan, Roster
from domain.policy import Policy


def missing_rollback_fields(plan: RollbackPlan, policy: Policy,
                            roster: Roster | None = None) -> list[str]:
    """What the plan lacks, in the order of `policy.rollback.required_fields`.

    A field is missing when it is None or, for text, blank (only whitespace): a plan of
    spaces documents nothing. With a `roster`, the owner must also be a person in it who
    is not a shared account (section 6: every change must be attributable); otherwise
    the entry names the field and why, e.g. `"owner ('zed' is not in the roster)"`.

    Args:
        plan: the change's rollback plan.
        policy: the policy, whose `rollback.required_fields` say what is required.
        roster: when given, who may own a rollback.

    Returns:
        Field names (or a field name with its reason); empty when the plan is complete.
    """
    missing: list[str] = []
    for name in policy.rollback.required_fields:
        value = getattr(plan, name, None)
        if value is None or (isinstance(value, str) and not value.strip()):
            missing.append(name)
        elif name == "owner" and roster is not None:
            owner = str(value).strip()
            person = roster.get(owner)
            if person is None:
                missing.append(f"owner ({owner!r} is not in the roster)")
            elif person.shared_account:
                missing.append(f"owner ({owner!r} is a shared account)")
    return missing
