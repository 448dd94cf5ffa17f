"""Policy section 2, step 1: submit. The ticket becomes a change, or goes back with a list."""

from __future__ import annotations

from domain.events import EventType
from domain.gates import unaccepted_evidence
from domain.history import submitted_change
from domain.intake import incident_problem, validate_ticket
from domain.models import Category, ChangeRequest, IncidentFacts
from domain.standard import procedure_misfits
from integrations.factory import Adapters
from integrations.ports import TicketNotFound
from tasks.code_host import with_pull_request
from tasks.common import ChangeStopped, events_of, record, step
from tasks.notices import tell_author
from tasks.tickets import tell

NEEDS_INFORMATION = "needs information"


class ChangeRefused(ChangeStopped):
    """The ticket is not a valid change request; `problems` (the fixes) lists every reason."""

    outcome = "Refused"

    @property
    def problems(self) -> list[str]:
        """What is wrong with the ticket, each naming its field and how to fix it."""
        return self.fixes


@step("submit-change")
def submit_change(a: Adapters, key: str) -> ChangeRequest:
    """The change as submitted: validated from the ticket once, then read from the log.

    After submission the change log, not the ticket, holds what is being approved and
    deployed: a later edit of the ticket changes nothing in a running lifecycle.

    Raises:
        ChangeRefused: the ticket has problems. It got one comment listing them and
            moved to "needs information"; nothing else happened.
    """
    recorded = submitted_change(events_of(a, key))
    if recorded is not None:
        return recorded
    ticket = a.tickets.get(key)
    cfg = a.config
    checked = validate_ticket(ticket, cfg.policy, cfg.roster, cfg.services)
    if not isinstance(checked, list):
        checked = unaccepted_evidence(checked, cfg.policy, a.code_host is not None) or checked
    if not isinstance(checked, list):
        checked = with_incident(a, checked)
    if not isinstance(checked, list):
        checked = with_pull_request(a, checked)
    if isinstance(checked, list):
        known = {k: v for k, v in ticket.fields.items()
                 if k in ("summary", "category", "service", "version", "author")
                 and isinstance(v, str)}
        record(a, key, EventType.VALIDATION_FAILED, problems=checked, **known)
        listed = "\n- " + "\n- ".join(checked)
        tell(a, key, f"changeflow cannot accept this change yet. Fix these and start it "
             f"again:{listed}", NEEDS_INFORMATION)
        tell_author(a, key, known.get("author"), "refused", f"{key} cannot be accepted yet",
                    f"Your change {key} was refused at submit. Fix these on the ticket and "
                    f"start it again with change-request:{listed}")
        raise ChangeRefused(f"{key} cannot be accepted yet:\n- " + "\n- ".join(checked),
                            checked)
    change = checked
    record(a, key, EventType.CHANGE_SUBMITTED, change.author, summary=change.summary,
           description=change.description, category=change.category.value,
           service=change.service, version=change.version, author=change.author,
           watchers=ticket.watchers, change=change.model_dump(mode="json"))
    return change


def with_incident(a: Adapters, change: ChangeRequest) -> ChangeRequest | list[str]:
    """An emergency's incident read from the ticket system, or the problems (section 5).

    For a P1 incident, the ticket system's own record decides (it must be open and of
    priority 1) and is what is recorded; a CVE, or a ticket system that holds no
    incidents, is recorded as the ticket's claim (`IncidentFacts.source`).
    """
    ref = change.incident_ref
    if change.category is not Category.EMERGENCY or ref is None:
        return change
    facts: IncidentFacts | None = None
    if change.emergency_trigger == "p1_incident":
        try:
            facts = a.tickets.incident(ref)
        except TicketNotFound as exc:
            return [f"incident_ref: {ref} is not an incident the ticket system knows: {exc}"]
    facts = facts or IncidentFacts(key=ref, source="ticket")
    problem = incident_problem(facts)
    return [problem] if problem else change.model_copy(update={"incident": facts})


@step("check-procedure")
def check_procedure(a: Adapters, change: ChangeRequest) -> ChangeRequest:
    """Section 1: a standard change must fit its pre-approved procedure, else it is normal.

    The check and its reasons are recorded; a misfit is reclassified (recorded, and said
    on the ticket) and goes on as a normal change: reviewed, staged, signed off.
    """
    if events_of(a, change, EventType.PROCEDURE_CHECKED):
        return change
    reasons = procedure_misfits(change, a.config.policy)
    record(a, change.id, EventType.PROCEDURE_CHECKED, procedure=change.standard_procedure,
           fits=not reasons, reasons=reasons)
    if not reasons:
        return change
    record(a, change.id, EventType.CHANGE_RECLASSIFIED, **{"from": change.category.value},
           to=Category.NORMAL.value, reasons=reasons)
    tell(a, change.id, "This change does not fit its standard procedure, so "
         "it is handled as a normal change (review, staging, QA sign-off):"
         "\n- " + "\n- ".join(reasons))
    return change.model_copy(update={"category": Category.NORMAL})
