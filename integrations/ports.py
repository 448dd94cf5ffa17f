"""The ports: one `Protocol` per outside system, speaking domain models only.

Adapters live beside this module; `integrations.factory` is the one place that picks
them. A raw `jira` object, `requests.Response` or SQL row never crosses a port.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from domain.code_host import CheckRun, CodeScan, Deployment, PullRequest
from domain.events import NewEvent
from domain.lifecycle import ChangeRecord
from domain.models import (
    ChangeEvent,
    CheckResult,
    CommandResult,
    IncidentFacts,
    Notice,
    Ticket,
)
from domain.practices import DeployEntry
from domain.services import HttpCheck

if TYPE_CHECKING:
    from integrations.anchors import Anchor
    from integrations.chain_keys import ChainKeys


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

    def web_url(self, key: str) -> str | None:
        """The ticket's page for people (Jira's browse page), or None (local files)."""
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

    def incident(self, ref: str) -> IncidentFacts | None:
        """The incident `ref` as the ticket system holds it; None if it holds no incidents.

        Raises:
            TicketNotFound: it holds incidents, but not this one.
        """
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


class DeployRecordMalformed(ValueError):
    """A deploy command's record holds a line that is not a deploy; the message names where."""


class DeployRecords(Protocol):
    """What a deploy command records of each deploy it made (a service's `deploy_record`)."""

    def entries(self, where: str) -> list[DeployEntry] | None:
        """The deploys recorded at `where`, in the record's order; None if nothing is there.

        Raises:
            DeployRecordMalformed: an entry is not a deploy (environment, version,
                deployed_at with its time zone); the message names `where` and the line.
        """
        ...


class NoticeUndelivered(Exception):
    """A notice was refused: no address, a bad login, an unknown recipient. Not retried.

    The message names to whom and why, never the notice's text (it may hold a code) nor a
    password or token.
    """


class NoticeUnavailable(NoticeUndelivered):
    """The channel is down, rate-limited or timed out: worth retrying.

    Attributes:
        retry_after: seconds the channel asked us to wait (`Retry-After`), if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Notifier(Protocol):
    """Sends notices to people, each through one personal channel."""

    def notify(self, notice: Notice) -> None:
        """Deliver (or durably queue) the notice to `notice.to`.

        Raises:
            NoticeUndelivered: refused; `NoticeUnavailable` when worth retrying.
        """
        ...


class TeamChannel(Protocol):
    """A channel the whole team reads (chat channel, webhook); never given a code."""

    name: str

    def post(self, notice: Notice) -> None:
        """Post the notice to the channel.

        Raises:
            NoticeUndelivered: refused; `NoticeUnavailable` when worth retrying.
        """
        ...


class ChainBroken(Exception):
    """The change log's hash chain does not hold."""


class ChangeLogUnavailable(Exception):
    """The change log could not record an event (its database refused or is gone).

    Nothing of the append was recorded, so nothing that needs that record may be done.
    """


@dataclass(frozen=True)
class Verification:
    """The outcome of checking the hash chain.

    Attributes:
        ok: the chain holds from its start (or last checkpoint) to the head.
        checked: how many events were checked.
        head_seq: the last sequence number checked.
        head_hash: the hash of the last event checked; print it to detect a later rewrite.
        bad_seq: the first event that breaks the chain, when it does not hold.
        problem: what is wrong with that event.
        mismatches: changes whose cached record does not hold against their events, each
            named with what is wrong; any makes `ok` False.
    """

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: str | None = None
    mismatches: tuple[str, ...] = ()


class ChangeLog(Protocol):
    """The append-only, hash-chained and keyed record of every decision (policy section 7).

    What the flows, tasks, reports and commands use; `SqlChangeLog` is its adapter.

    Attributes:
        keys: the chain keys it MACs and signs with.
    """

    keys: ChainKeys

    def append(self, change_id: str, type: str, actor: str, payload: dict[str, Any],
               at: datetime) -> ChangeEvent:
        """Append one event (all or nothing) and return it with its place in the chain."""
        ...

    def append_many(self, new: Sequence[NewEvent]) -> list[ChangeEvent]:
        """Append events in one transaction, in order: all are written or none."""
        ...

    def events(self, change_id: str) -> list[ChangeEvent]:
        """A change's events in order, each checked; raises `ChainBroken` if one does not hold."""
        ...

    def checked_events(self, change_id: str) -> tuple[list[ChangeEvent], list[str]]:
        """A change's events and every problem with its record (see `check_change`)."""
        ...

    def check_change(self, change_id: str) -> list[str]:
        """Whether a change's record holds (events, their places, cache); [] when it does."""
        ...

    def record(self, change_id: str) -> ChangeRecord | None:
        """A change's record folded from its events, or None if it has none."""
        ...

    def changes(self, category: str | None = None,
                emergency: bool | None = None) -> list[ChangeRecord]:
        """Every change's current record, oldest first, each checked."""
        ...

    def active(self, start: datetime, end: datetime,
               hashes: bool = False) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
        """The records (id, JSON) and events of the changes active in [start, end)."""
        ...

    def events_between(self, start: datetime, end: datetime) -> Iterator[ChangeEvent]:
        """Events with start <= at < end, in chain order."""
        ...

    def deployment_events(self, since: datetime | None = None) -> list[ChangeEvent]:
        """What reached production and who approved, in one read: the practices audit's facts.

        Every event of a type in `domain.practices.DEPLOYMENT_EVENTS` recorded at or after
        `since` (all of them when None), and the submissions (`SUBMISSIONS`, whenever
        recorded) of the changes those belong to, which name each change's service and
        author; in chain order, each checked like `events`.

        Raises:
            ChainBroken: an event's content, hash or MAC does not hold.
        """
        ...

    def last_succeeded(self, service: str, excluding: str) -> ChangeRecord | None:
        """The change of `service` (other than `excluding`) that succeeded last, with a version.

        "Last" is by when its verification passed. Its record is folded from its checked
        events; None when no other change of the service has succeeded.
        """
        ...

    def change_lock(self, change_id: str) -> AbstractContextManager[None]:
        """Hold the change for one run; raises `ChangeBusy` if another run holds it."""
        ...

    def record_intent(self, change_id: str, action: str, actor: str, details: dict[str, Any],
                      at: datetime) -> str:
        """Record that a side effect is about to happen; returns its effect id."""
        ...

    def record_outcome(self, change_id: str, effect_id: str, actor: str, ok: bool,
                       result: dict[str, Any], at: datetime) -> None:
        """Record a side effect's outcome."""
        ...

    def unfinished_effects(self, change_id: str | None = None) -> list[ChangeEvent]:
        """Intents with no recorded outcome."""
        ...

    def head(self) -> tuple[int, str]:
        """The chain's last sequence number and hash."""
        ...

    def head_with_time(self) -> tuple[int, str, str]:
        """The chain's last sequence number, hash and time text."""
        ...

    def count(self) -> int:
        """How many events the log holds."""
        ...

    def anchor_problem(self, seq: int, hash_: str) -> str | None:
        """Why the chain no longer holds event `seq` with hash `hash_`; None if it does."""
        ...

    def chain_start(self) -> tuple[int, str]:
        """Where the kept chain starts: (0, genesis), or the last purge's checkpoint."""
        ...

    def export(self, upto: int) -> Iterator[dict[str, Any]]:
        """Every event up to `upto`, exactly as stored and hashed."""
        ...

    def event_time(self, seq: int) -> str:
        """The stored time text of event `seq`."""
        ...

    def verify(self, fold_changes: bool = False) -> Verification:
        """Check the whole log: the chain, and every cached record."""
        ...

    def purge(self, cutoff: datetime, now: datetime, actor: str) -> int:
        """Delete events older than `cutoff` (retention), recording a checkpoint."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class Anchors(Protocol):
    """Somewhere the change log's signed heads are kept, out of the database users' reach.

    Attributes:
        where: the target, as a person would name it (a path, a ticket's comments, ...).
    """

    where: str

    def publish(self, anchor: Anchor) -> str:
        """Keep `anchor` (durably, before returning); returns where it went."""
        ...

    def read(self, public_keys: dict[str, str]) -> list[Anchor]:
        """Every anchor kept, oldest first, each checked against `public_keys`.

        Raises:
            AnchorError: one is malformed or forged; the message names which.
        """
        ...


class CodeHostError(Exception):
    """The code host refused a request; the message carries its reason, never the token.

    A 404's message names the resource that was not there (or that the token may not see).
    """


class CodeHostUnavailable(CodeHostError):
    """The code host is down, rate-limited or garbled its answer: worth retrying.

    Attributes:
        retry_after: seconds the host asked us to wait (`Retry-After`, or until its rate
            limit resets), if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CodeHost(Protocol):
    """Where the code behind a change lives and what it says about it (GitHub, ...).

    Every method reads; lists are complete (every page followed) unless said otherwise.
    Failures are `CodeHostError` (refused: not worth retrying) or `CodeHostUnavailable`.
    """

    def pull_request(self, repo: str, number: int) -> PullRequest:
        """The pull request `number` of `repo` ("owner/name"), with all reviews and paths."""
        ...

    def pull_requests_for_commit(self, repo: str, sha: str) -> list[int]:
        """The numbers of the pull requests behind commit `sha`, ascending; [] if none.

        A pull request is behind a commit when the commit is its head or merge commit
        (the merged one that brought it to the default branch; open ones too while it is
        not there yet): what links a deployed commit back to its reviewed change.
        """
        ...

    def commit_of(self, repo: str, ref: str) -> str:
        """The commit a tag, branch or sha names; raises `CodeHostError` if none."""
        ...

    def required_checks(self, repo: str, branch: str) -> list[str] | None:
        """The checks branch protection requires on `branch`; None if it is unprotected."""
        ...

    def check_runs(self, repo: str, sha: str) -> list[CheckRun]:
        """The latest run of every check on commit `sha`."""
        ...

    def code_scan(self, repo: str, sha: str, ref: str) -> CodeScan:
        """Whether commit `sha` was analysed, and the open alerts on `ref`."""
        ...

    def deployments(self, repo: str, environment: str,
                    since: datetime | None = None) -> list[Deployment]:
        """Deployments to `environment`, newest first, each with its latest state.

        Args:
            repo: "owner/name".
            environment: e.g. "production".
            since: only deployments created at or after this (aware) time.
        """
        ...
