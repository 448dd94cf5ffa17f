"""`change-request`: the entry point an engineer starts from the Prefect UI with a ticket key.

It reads the change's category and runs that category's lifecycle in this same run (not
as a subflow), so that a wait for a person suspends this run, the one the engineer
started.
"""

from __future__ import annotations

from prefect import flow

from domain.events import ChangeSubmitted, EventType, payload_of
from domain.models import Category
from flows.lifecycle import Outcome, run_lifecycle
from integrations.factory import open_adapters
from tasks.common import ChangeStopped, last_of
from tasks.intake import submit_change
from tasks.progress import stopped


@flow(name="change-request", flow_run_name="{ticket_key} · change-request", log_prints=True)
def change_request(ticket_key: str) -> Outcome:
    """Run the lifecycle of the ticket's category (the one recorded, once submitted).

    Args:
        ticket_key: the change ticket's key, e.g. CHG-101.
    """
    with open_adapters() as a:  # once for the whole run
        try:
            submitted = last_of(a, ticket_key, EventType.CHANGE_SUBMITTED)
            raw = (payload_of(submitted, ChangeSubmitted).category if submitted
                   else a.tickets.get(ticket_key).fields.get("category"))
            if not isinstance(raw, str) or raw not in set(Category):  # a list: unhashable
                submit_change(a, ticket_key)  # refuses the ticket, listing every problem
        except ChangeStopped as stop:
            return stopped(ticket_key, stop)
        return run_lifecycle(a, ticket_key, Category(str(raw)))
