"""Notices to people and to the team's channels: each delivery retried, each recorded.

A notice goes to its person through their personal channels in order (`domain.notices`):
the first that takes it is recorded as `notice_delivered`, each that refuses it as
`notice_failed` (to whom, the channel, the kind and the subject: never the text, which
may hold a one-time code). A channel that is down or rate-limited is retried by the one
retry layer (`tasks.tickets.ticket_task`) before the next is tried. A notice about the
whole team (`GROUP_KINDS`) also goes to every team channel, once; a code never does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prefect.runtime import flow_run
from prefect.settings import get_current_settings

from domain.events import EventType
from domain.models import Notice
from domain.notices import CODE_KIND, GROUP_KINDS, PersonalChannel, routes
from integrations.factory import Adapters
from integrations.ports import NoticeUndelivered
from tasks.common import record
from tasks.tickets import ticket_task

log = logging.getLogger("changeflow.notify")

TEAM = "channel:"
"""How a team channel is named in a delivery record: `channel:slack-webhook/ops`."""


@ticket_task("deliver-notice")
def _deliver(a: Adapters, channel: str, notice: Notice) -> None:
    if channel.startswith(TEAM):
        next(c for c in a.channels if c.name == channel[len(TEAM):]).post(notice)
    else:
        a.notifiers[channel].notify(notice)


def _attempt(a: Adapters, channel: str, notice: Notice, to: str, stream: str | None) -> bool:
    """Deliver by one channel (retried when transient); record the outcome."""
    try:
        _deliver(a, channel, notice)
    except NoticeUndelivered as exc:
        _record(a, EventType.NOTICE_FAILED, notice, to, channel, stream, str(exc))
        log.warning("notice to %s by %s failed: %s", to, channel, exc)
        return False
    _record(a, EventType.NOTICE_DELIVERED, notice, to, channel, stream)
    return True


def _record(a: Adapters, type_: str, notice: Notice, to: str, channel: str,
            stream: str | None, reason: str | None = None) -> None:
    stream = stream or notice.change_id
    if stream is not None:
        record(a, stream, type_, to=to, channel=channel, kind=notice.kind,
               subject=notice.subject, reason=reason)


def personal_channels(a: Adapters, person_id: str) -> list[PersonalChannel]:
    """The configured personal channels that reach `person_id`, in their order."""
    person = a.config.roster.get(person_id)
    configured = [c for c in a.settings.notifiers if c in a.notifiers]
    return routes(person, configured) if person is not None else []


def send(a: Adapters, notice: Notice, stream: str | None = None) -> str | None:
    """Deliver `notice` to its person by the first of their channels that takes it.

    `stream` is where the delivery is recorded (default the notice's change). Returns the
    channel that delivered it, or None when none could (each failure is recorded).
    """
    channels = personal_channels(a, notice.to)
    if not channels:
        _record(a, EventType.NOTICE_FAILED, notice, notice.to, "", stream,
                f"{notice.to} has no personal channel among "
                f"{', '.join(a.settings.notifiers)}")
    for channel in channels:
        if _attempt(a, channel, notice, notice.to, stream):
            return channel
    return None


def announce(a: Adapters, notice: Notice, stream: str | None = None) -> list[str]:
    """Post `notice` to every team channel; the channels that took it.

    Raises:
        ValueError: the notice holds a one-time code (it goes to one person only).
    """
    if notice.kind == CODE_KIND:
        raise ValueError("a one-time code is never posted to a team channel")
    return [c.name for c in a.channels
            if _attempt(a, TEAM + c.name, notice, TEAM + c.name, stream)]


def notify(a: Adapters, people: Iterable[str], notice: Notice,
           stream: str | None = None) -> list[str]:
    """Send `notice` to each of `people` (and, for a group notice, to the team channels).

    `notice.to` is replaced by each person in turn. Returns who could not be reached.
    """
    unreached = [person for person in dict.fromkeys(people)
                 if send(a, notice.model_copy(update={"to": person}), stream) is None]
    if notice.kind in GROUP_KINDS:
        announce(a, notice, stream)
    return unreached


def tell_author(a: Adapters, change_id: str, author: str | None, kind: str, subject: str,
                body: str) -> None:
    """Tell a change's author what became of it, with a link to this run's page.

    An author the roster does not know as a person has only the ticket's comment (a
    refused ticket may name anyone, a shared account, or no one).
    """
    person = a.config.roster.get(author) if author else None
    if person is None or person.shared_account:
        return
    link = run_link(str(flow_run.id)) if flow_run.id else None
    send(a, Notice(to=author, kind=kind, change_id=change_id, subject=subject, link=link,
                   body=body + (f"\nThe run: {link}" if link else "")))


def run_link(run_id: str) -> str | None:
    """The run's page in the Prefect UI (`PREFECT_UI_URL`), where its Resume form is."""
    ui = get_current_settings().ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui else None
