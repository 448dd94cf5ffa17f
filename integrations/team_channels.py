"""Team channels: Prefect notification blocks (Slack or Teams webhook, custom webhook).

A block is named in settings as `<block type slug>/<block name>` and made in the
Prefect UI (Blocks, +) or in code, so its webhook URL is kept encrypted by Prefect and
never in changeflow's settings. It is loaded on first use. A block's `notify` has no
recipient, which is why a one-time code never goes through one (`tasks.notices`).
"""

from __future__ import annotations

import inspect
import logging
import re
from typing import Any

import httpx
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound
from prefect.utilities.asyncutils import run_coro_as_sync

from domain.models import Notice
from integrations.ports import NoticeUnavailable, NoticeUndelivered

log = logging.getLogger("changeflow.notify")

BLOCK_NAME = re.compile(r"^[a-z0-9-]+/[a-z0-9-]+$")
"""`slack-webhook/ops`: the block type's slug and the block's name (Prefect's shapes)."""


def block_name_problem(name: str) -> str | None:
    """What is wrong with a team channel's block name, or None."""
    if BLOCK_NAME.match(name):
        return None
    return (f"{name!r} is not a block name: write it as <block type>/<name>, "
            "e.g. slack-webhook/changeflow-ops (lowercase letters, digits and dashes)")


class BlockChannel:
    """`TeamChannel` that posts through one Prefect notification block."""

    def __init__(self, name: str) -> None:
        """Remember the block's name; it is loaded on first use."""
        problem = block_name_problem(name)
        if problem:
            raise ValueError(problem)
        self.name = name
        self._block: NotificationBlock | None = None

    def __repr__(self) -> str:
        return f"BlockChannel({self.name})"

    def block(self) -> NotificationBlock:
        """The notification block, loaded once.

        Raises:
            NoticeUndelivered: no such block, or it is not a notification block.
        """
        if self._block is None:
            try:
                loaded = Block.load(self.name)
            except (ValueError, ObjectNotFound):
                raise NoticeUndelivered(f"no Prefect block {self.name!r}: create it (Blocks in "
                                        "the Prefect UI) or fix CHANGEFLOW_TEAM_CHANNELS") from None
            if not isinstance(loaded, NotificationBlock):
                raise NoticeUndelivered(f"the Prefect block {self.name!r} is a "
                                        f"{type(loaded).__name__}, not a notification block")
            self._block = loaded
        return self._block

    def post(self, notice: Notice) -> None:
        """Post the notice's subject and body (and its link) through the block.

        Raises:
            NoticeUndelivered: the block is missing or its service refused;
                `NoticeUnavailable` when it could not be reached or answered 429 or 5xx.
        """
        block = self.block()
        body = notice.body + (f"\n{notice.link}" if notice.link else "")
        try:
            with block.raise_on_failure():
                sent: Any = block.notify(body, subject=notice.subject)
                if inspect.iscoroutine(sent):  # a block whose notify is only async
                    run_coro_as_sync(sent)
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            said = f"the channel {self.name} refused the notice: HTTP {status}"
            if status == 429 or status >= 500:
                raise NoticeUnavailable(said) from None
            raise NoticeUndelivered(said) from None
        except Exception as exc:  # noqa: BLE001 - apprise and httpx raise many kinds
            raise NoticeUnavailable(f"cannot post to the channel {self.name}: "
                                    f"{type(exc).__name__}") from None
        log.info("notice to channel %s (%s%s): %s", self.name, notice.kind,
                 f", {notice.change_id}" if notice.change_id else "", notice.subject)
