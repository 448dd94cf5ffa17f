"""The ports: one `Protocol` per outside system, speaking domain models only.

Adapters live beside this module; `integrations.factory` is the one place that picks
them. A raw `jira` object, `requests.Response` or SQL row never crosses a port.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from domain.lifecycle import ChangeRecord
from domain.models import ChangeEvent, CheckResult, CommandResult, Notice, Ticket
from domain.services import HttpCheck


class TicketNotFound(LookupError):
    """No ticket has this key."""


class TicketSystemError(Exception):
    """The ticket system refused a request; the message carries its reason."""


class TicketSystemUnavailable(TicketSystemError):
    """The ticket system is down, overloaded or garbled its answer: worth retrying.

    Attributes:
        retry_after: seconds the system asked us to wait (`Retry-After`), if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChangeTickets(Protocol):
    """Where change requests are written by people (Jira, or local files)."""

    def get(self, key: str) -> Ticket:
        """The ticket with this key; raises `TicketNotFound`."""
        ...

    def search(self, status: str | None = None) -> list[Ticket]:
        """Tickets, optionally only those in `status`, in key order."""
        ...

    def add_comment(self, key: str, body: str) -> None:
        """Add a comment to the ticket."""
        ...

    def transition(self, key: str, status: str) -> None:
        """Move the ticket to `status` (changeflow's name for it); no-op if it is there."""
        ...

    def comments(self, key: str) -> list[str]:
        """The ticket's comments, oldest first."""
        ...

    def add_link(self, key: str, url: str, title: str) -> None:
        """Attach an evidence link to the ticket, once per URL."""
        ...

    def open_incident(self, change_key: str, incident_id: str, summary: str,
                      priority: int) -> str:
        """The ticket system's incident for `incident_id`, linked to the change; made once.

        Returns:
            The incident's key in the ticket system.
        """
        ...


class CommandRunner(Protocol):
    """Runs a catalog command as a subprocess, bounded by a timeout."""

    def run(self, argv: Sequence[str], timeout_seconds: float, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        """Run `argv` (no shell) and return what it left behind; never raises on failure."""
        ...


class Checks(Protocol):
    """Smoke and monitor checks against a running service."""

    def check(self, spec: HttpCheck) -> CheckResult:
        """Run one check; a connection error or timeout is a failed check, not a raise."""
        ...


class Notifier(Protocol):
    """Sends notices to people."""

    def notify(self, notice: Notice) -> None:
        """Deliver (or durably queue) the notice."""
        ...


class ChainBroken(Exception):
    """The change log's hash chain does not hold."""


class ChangeLog(Protocol):
    """The append-only, hash-chained record of every decision (policy section 7)."""

    def append(self, change_id: str, type: str, actor: str, payload: dict[str, Any],
               at: datetime) -> ChangeEvent:
        """Append one event (all or nothing) and return it with its place in the chain."""
        ...

    def events(self, change_id: str) -> list[ChangeEvent]:
        """A change's events in order."""
        ...

    def record(self, change_id: str) -> ChangeRecord | None:
        """A change's current record, or None if the log has never heard of it."""
        ...

    def changes(self) -> list[ChangeRecord]:
        """Every change's current record, oldest first."""
        ...
