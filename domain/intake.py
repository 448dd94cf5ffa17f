"""Policy section 2, step 1: a ticket becomes a `ChangeRequest`, or a list of problems.

Every problem is found in one pass and says which field, what is wrong and how to fix
it, so the author fixes the ticket once. Nothing from a ticket is ever executed: the
service must exist in the catalog and the version must be a plain version string.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

from pydantic import ValidationError

from domain.models import ChangeRequest, IncidentFacts, Roster, Ticket
from domain.policy import Policy
from domain.rollback import missing_rollback_fields
from domain.services import ServiceCatalog

VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}\Z")
CVE = re.compile(r"^CVE-[0-9]{4}-[0-9]{4,}\Z")
INCIDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+\Z")

REQUIRED_TEXT = ("summary", "description", "scope", "risk_assessment", "testing_plan")

_HINTS = {
    "summary": "a one-line title of the change",
    "description": "what changes and why",
    "scope": "which systems and environments the change touches",
    "risk_assessment": "what could go wrong, how likely, and the impact",
    "testing_plan": "how the change is tested before and after production",
}


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = 2
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4


def shown(value: Any) -> str:
    """A ticket's value as quoted in a problem: its repr, cut short.

    A ticket may hold a 100 kB string or, through YAML aliases, a few lines that expand to
    millions of elements; a message quoting it must stay a line.
    """
    return _SHOWN.repr(value)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def validate_ticket(ticket: Ticket, policy: Policy, roster: Roster,
                    services: ServiceCatalog, *, complete: bool = False
                    ) -> ChangeRequest | list[str]:
    """The ticket as a `ChangeRequest`, or every problem with it.

    An emergency ticket must say why it is one (`emergency_trigger`, `incident_ref`) and
    may leave the policy's `emergency.deferrable_fields` empty until its documentation
    is due (section 5 step 3), unless `complete` asks for every field.

    Args:
        ticket: the ticket as its system holds it.
        policy: the policy (rollback plan's required fields, emergency triggers).
        roster: who may author and own rollbacks.
        services: the catalog the service must come from.
        complete: require every field a normal change has, deferrable ones included.

    Returns:
        A valid change, or problems such as
        `rollback_plan: missing owner; add who executes the rollback`.
    """
    fields = dict(ticket.fields)
    emergency = fields.get("category") == "emergency"
    deferred: set[str] = (set(policy.emergency.deferrable_fields) if emergency and not complete
                          else set())
    problems = _field_problems(fields, roster, services, deferred)
    if "id" in fields:  # the key names the change; a field must not rename it
        problems["id"] = (f"not a ticket field: the change's id is its ticket's key "
                          f"({ticket.key}); remove it")
        del fields["id"]
    if emergency:
        problems.update(_emergency_problems(fields, policy))
    if fields.get("rollback_plan") is None:
        problems["rollback_plan"] = ("missing; add trigger, steps, owner, verification and "
                                     "time_estimate_minutes (policy section 4)")
        fields["rollback_plan"] = {}
    try:
        change = ChangeRequest.model_validate({**fields, "id": ticket.key})
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


def _emergency_problems(fields: dict[str, Any], policy: Policy) -> dict[str, str]:
    """Section 5: an emergency names its trigger and the incident or CVE behind it."""
    problems: dict[str, str] = {}
    triggers = policy.emergency.triggers
    trigger, ref = fields.get("emergency_trigger"), fields.get("incident_ref")
    if trigger not in triggers:
        problems["emergency_trigger"] = (
            f"{'missing' if trigger is None else f'{shown(trigger)} is not an emergency'}; "
            f"say why this cannot wait: one of {', '.join(triggers)} (policy section 5)")
    cve = trigger == "exploited_critical_vulnerability"
    pattern, example = (CVE, "CVE-2026-12345") if cve else (INCIDENT, "INC-4711")
    if not isinstance(ref, str) or not pattern.match(ref):
        what = "the CVE being exploited" if cve else "the P1 incident this resolves"
        problems["incident_ref"] = (f"{'missing' if ref is None else f'{shown(ref)} is not valid'}"
                                    f"; name {what}, e.g. {example}")
    return problems


def incident_problem(facts: IncidentFacts) -> str | None:
    """Why the incident an emergency names cannot justify it, or None (section 5).

    Only what was read from the incident itself is judged: it must be open and of
    priority 1. A claim (a CVE, a ticket system without incidents) is recorded as such.
    """
    if facts.source != "ticket_system":
        return None
    if facts.open is False:
        return (f"incident_ref: {facts.key} is already resolved; an emergency change is for "
                "an open P1 incident (policy section 5)")
    if facts.priority is None:
        return (f"incident_ref: {facts.key} has no priority changeflow knows "
                "(jira.yaml incidents.priorities); an emergency is for a P1 incident")
    if facts.priority != 1:
        return (f"incident_ref: {facts.key} is a P{facts.priority} incident; an emergency "
                "change is for a P1 incident (policy section 5): use a normal change")
    return None


def _field_problems(fields: dict[str, Any], roster: Roster, services: ServiceCatalog,
                    deferred: set[str]) -> dict[str, str]:
    """Problems with the text fields, by field name; drops fields that are not text."""
    problems: dict[str, str] = {}
    for name in REQUIRED_TEXT:
        value = fields.get(name)
        if name in deferred and (value is None or (isinstance(value, str)
                                                  and not value.strip())):
            fields[name] = ""
        elif not isinstance(value, str) or not value.strip():
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
        problems["service"] = (f"{shown(service)} is not in the service catalog (known: "
                               f"{', '.join(sorted(services.services))})")
    if version is not None and not VERSION.match(version):
        problems["version"] = (f"{shown(version)} is not a plain version string "
                               "(letters, digits and . _ + -)")
    person = roster.get(author) if author is not None else None
    if author is not None and person is None:
        problems["author"] = f"{shown(author)} is not in the roster; use a roster id"
    elif person is not None and person.shared_account:
        problems["author"] = (f"{author!r} is a shared account; a change is authored, and "
                              "deployed, by one person (policy section 6)")
    return problems
