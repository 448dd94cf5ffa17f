"""Who a notice may reach, and how: the rules of routing, with no I/O.

A notice goes to one person through a personal channel (their e-mail, their Slack
direct messages, or the local outbox of the embedded set-up), tried in their own order or
else the settings' order. Some notices also concern a group and are posted to the team's
channels (a chat channel, a webhook); a one-time approval code is never among them: it
goes to one person only, so a person without a personal channel cannot be asked for a
decision that needs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from domain.models import Person

PersonalChannel = Literal["email", "slack", "outbox"]
PERSONAL_CHANNELS: tuple[PersonalChannel, ...] = ("email", "slack", "outbox")

CODE_KIND = "approval-code"
"""A notice holding a one-time code: to its person only, never to a channel."""

GROUP_KINDS = frozenset({"schedule", "incident", "page", "escalation", "practice-finding",
                         "integrity-alarm", "codes-undelivered"})
"""Notices that also concern the team, and go to the channels too."""


def address(person: Person, channel: PersonalChannel) -> str | None:
    """Where `person` receives notices on `channel`, or None when they cannot."""
    if channel == "email":
        return person.email
    if channel == "slack":
        return person.slack_id
    return person.id


def routes(person: Person, configured: Sequence[PersonalChannel]) -> list[PersonalChannel]:
    """The personal channels to try for `person`, in order.

    Their own order (`channels`) when they gave one, else the settings'; only channels
    that are configured and on which they have an address.
    """
    order = person.channels or tuple(configured)
    return [c for c in dict.fromkeys(order) if c in configured and address(person, c)]


def unreachable(people: Sequence[Person], configured: Sequence[PersonalChannel]
                ) -> list[Person]:
    """Who of `people` no configured personal channel reaches (they cannot be sent a code)."""
    return [p for p in people if not routes(p, configured)]
