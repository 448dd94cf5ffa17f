"""Policy section 2, step 1: submit. The ticket becomes a change, or goes back with a list."""

from __future__ import annotations

from domain.intake import validate_ticket
from domain.models import ChangeRequest
from integrations.factory import Adapters
from tasks.common import ChangeStopped, last_of, record, step

NEEDS_INFORMATION = "needs information"


class ChangeRefused(ChangeStopped):
    """The ticket is not a valid change request; `problems` lists every reason."""

    def __init__(self, key: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{key} cannot be accepted yet:\n- " + "\n- ".join(problems))


@step("submit-change")
def submit_change(a: Adapters, key: str) -> ChangeRequest:
    """The change as submitted: validated from the ticket once, then read from the log.

    After submission the change log, not the ticket, holds what is being approved and
    deployed: a later edit of the ticket changes nothing in a running lifecycle.

    Raises:
        ChangeRefused: the ticket has problems. It got one comment listing them and
            moved to "needs information"; nothing else happened.
    """
    submitted = last_of(a, key, "change_submitted")
    if submitted is not None:
        return ChangeRequest.model_validate(submitted.payload["change"])
    ticket = a.tickets.get(key)
    cfg = a.config
    checked = validate_ticket(ticket, cfg.policy, cfg.roster, cfg.services)
    if isinstance(checked, list):
        known = {k: v for k, v in ticket.fields.items()
                 if k in ("summary", "category", "service", "version", "author")
                 and isinstance(v, str)}
        record(a, key, "validation_failed", problems=checked, **known)
        a.tickets.add_comment(key, "changeflow cannot accept this change yet. Fix these and "
                              "start it again:\n- " + "\n- ".join(checked))
        a.tickets.transition(key, NEEDS_INFORMATION)
        raise ChangeRefused(key, checked)
    change = checked
    record(a, key, "change_submitted", change.author, summary=change.summary,
           description=change.description, category=change.category.value,
           service=change.service, version=change.version, author=change.author,
           watchers=ticket.watchers, change=change.model_dump(mode="json"))
    return change
