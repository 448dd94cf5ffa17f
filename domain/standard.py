"""Standard changes: does a ticket fit the pre-approved procedure it names (section 1)?

A standard change is pre-approved only because its procedure is established and its
reach is known. A ticket fits when it names a procedure from the policy, and its
service, kind of change and every changed path are ones that procedure covers. One that
does not fit is handled as a normal change, with these reasons recorded; being strict
here only ever costs a review.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from domain.models import Category, ChangeRequest
from domain.policy import Policy, StandardProcedure
from domain.security import path_matches


def procedure_misfits(change: ChangeRequest, policy: Policy) -> list[str]:
    """Why `change` is not covered by its standard procedure; empty when it fits.

    Args:
        change: a change submitted as standard.
        policy: the policy, whose `standard_procedures` list what each may touch.

    Returns:
        One reason per mismatch, e.g. `path 'src/app.py' is outside certificate_renewal
        (allowed: **/*.pem, **/certs/**)`.
    """
    name = change.standard_procedure
    known = ", ".join(sorted(policy.standard_procedures)) or "none"
    if not name:
        return [f"no standard_procedure named (known: {known})"]
    procedure = policy.standard_procedures.get(name)
    if procedure is None:
        return [f"standard_procedure {name!r} is not in the policy (known: {known})"]
    return _outside(change, name, procedure)


def _outside(change: ChangeRequest, name: str, procedure: StandardProcedure) -> list[str]:
    reasons: list[str] = []
    if not any(fnmatchcase(change.service, pattern) for pattern in procedure.services):
        reasons.append(f"service {change.service!r} is not covered by {name} "
                       f"(covered: {', '.join(procedure.services)})")
    if procedure.kinds and change.change_kind not in procedure.kinds:
        reasons.append(f"change_kind {change.change_kind!r} is not one {name} covers "
                       f"(covered: {', '.join(procedure.kinds)})")
    if procedure.paths:
        if not change.changed_paths:
            reasons.append(f"no changed_paths listed; {name} covers only "
                           f"{', '.join(procedure.paths)}")
        for path in change.changed_paths:
            if ".." in path.replace("\\", "/").split("/"):
                reasons.append(f"path {path!r} climbs out of its folder ('..'); list the "
                               "path it resolves to")
            elif not any(path_matches(path, pattern) for pattern in procedure.paths):
                reasons.append(f"path {path!r} is outside {name} "
                               f"(allowed: {', '.join(procedure.paths)})")
    return reasons


def required_gates(change: ChangeRequest, policy: Policy) -> list[str]:
    """The gates `change` must pass: its procedure's for a standard change, else its category's.

    A standard change whose procedure is unknown gets the category's gates; it never
    reaches the gates anyway, being handled as a normal change.
    """
    return gates_for(change.category, change.standard_procedure, policy)


def gates_for(category: Category, procedure: str | None, policy: Policy) -> list[str]:
    """The gates of a category, or of the standard procedure named (see `required_gates`)."""
    named = (policy.standard_procedures.get(procedure or "")
             if category is Category.STANDARD else None)
    if named is not None:
        return list(named.gates)
    return list(policy.categories[category].gates)
