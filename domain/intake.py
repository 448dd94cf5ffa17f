"""Policy section 2, step 1: a ticket becomes a `ChangeRequest`, or a list of problems.

Every problem is found in one pass and says which field, what is wrong and how to fix
it, so the author fixes the ticket once. Nothing from a ticket is ever executed: the
service must exist in the catalog and the version must be a plain version string.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from domain.models import ChangeRequest, Roster, Ticket
from domain.policy import Policy
from domain.rollback import missing_rollback_fields
from domain.services import ServiceCatalog

VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}\Z")

REQUIRED_TEXT = ("summary", "description", "scope", "risk_assessment", "testing_plan")

_HINTS = {
    "summary": "a one-line title of the change",
    "description": "what changes and why",
    "scope": "which systems and environments the change touches",
    "risk_assessment": "what could go wrong, how likely, and the impact",
    "testing_plan": "how the change is tested before and after production",
}


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def validate_ticket(ticket: Ticket, policy: Policy, roster: Roster,
                    services: ServiceCatalog) -> ChangeRequest | list[str]:
    """The ticket as a `ChangeRequest`, or every problem with it.

    Args:
        ticket: the ticket as its system holds it.
        policy: the policy (rollback plan's required fields).
        roster: who may author and own rollbacks.
        services: the catalog the service must come from.

    Returns:
        A valid change, or problems such as
        `rollback_plan: missing owner; add who executes the rollback`.
    """
    fields = dict(ticket.fields)
    problems = _field_problems(fields, roster, services)
    if fields.get("rollback_plan") is None:
        problems["rollback_plan"] = ("missing; add trigger, steps, owner, verification and "
                                     "time_estimate_minutes (policy section 4)")
        fields["rollback_plan"] = {}
    try:
        change = ChangeRequest.model_validate({"id": ticket.key, **fields})
    except ValidationError as exc:
        found = [f"{name}: {text}" for name, text in problems.items()]
        for err in exc.errors():
            where = _location(err["loc"])
            if str(err["loc"][0]) in problems:
                continue  # reported already, with a hint
            msg = "missing" if err["type"] == "missing" else err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check its spelling)"
            found.append(f"{where}: {msg}")
        return found
    found = [f"{name}: {text}" for name, text in problems.items()]
    missing = missing_rollback_fields(change.rollback_plan, policy, roster)
    if missing and "rollback_plan" not in problems:
        found.append(f"rollback_plan: missing {', '.join(missing)} (policy section 4)")
    return found or change


def _field_problems(fields: dict[str, Any], roster: Roster,
                    services: ServiceCatalog) -> dict[str, str]:
    """Problems with the text fields, by field name; drops fields that are not text."""
    problems: dict[str, str] = {}
    for name in REQUIRED_TEXT:
        value = fields.get(name)
        if not isinstance(value, str) or not value.strip():
            problems[name] = f"missing; add {_HINTS[name]}"
    for name in ("service", "version", "author"):
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            hint = (f" (quote it: {name}: \"{value}\")" if isinstance(value, int | float)
                    else "")
            problems[name] = f"must be text, not {type(value).__name__}{hint}"
            fields.pop(name)
    service, version, author = (fields.get(k) for k in ("service", "version", "author"))
    if service is not None and service not in services.services:
        problems["service"] = (f"{service!r} is not in the service catalog (known: "
                               f"{', '.join(sorted(services.services))})")
    if version is not None and not VERSION.match(version):
        problems["version"] = (f"{version!r} is not a plain version string "
                               "(letters, digits and . _ + -)")
    if author is not None and roster.get(author) is None:
        problems["author"] = f"{author!r} is not in the roster; use a roster id"
    return problems
