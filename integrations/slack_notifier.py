"""Notices as Slack direct messages: each to the person's own Slack member id in the roster.

The bot posts with `chat.postMessage` to the member id (`channel=U0123ABCD`), which
opens its direct-message conversation with them; the token needs the `chat:write`
scope. `slack_sdk`'s own retries are off: the tasks that call this adapter are the one
retry layer, and a 429's `Retry-After` is handed to them. A message's text is escaped as
Slack asks (`&`, `<`, `>`), so a ticket's words cannot draw a link or mention a channel;
the notice's link is changeflow's own.

A notice that cannot be delivered raises `NoticeUndelivered` (an unknown member, a
revoked token) or `NoticeUnavailable` (429, 5xx, a timeout, a garbled answer), naming
the person and Slack's error code, never the message nor the token.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from domain.models import Notice, Roster
from integrations.jira_tickets import retry_after_seconds
from integrations.ports import NoticeUnavailable, NoticeUndelivered

log = logging.getLogger("changeflow.notify")

_quiet = logging.getLogger("changeflow.notify.slack_sdk")
_quiet.setLevel(logging.INFO)  # slack_sdk logs request bodies (a code) at DEBUG

TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error",
                              "service_unavailable", "request_timeout"})
"""Slack error codes worth retrying (the rest are refusals: a bad token, no such user)."""

ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
HINTS = {
    "invalid_auth": "check CHANGEFLOW_SLACK_TOKEN",
    "not_authed": "set CHANGEFLOW_SLACK_TOKEN",
    "token_revoked": "the token was revoked; install the app again",
    "account_inactive": "the token's account is deactivated",
    "missing_scope": "give the app the chat:write scope",
    "channel_not_found": "check the person's slack_id in roster.yaml",
    "user_not_found": "check the person's slack_id in roster.yaml",
}

LIMIT = 3500
"""Characters of text per message; Slack truncates past 40,000 and advises under 4,000."""


def mrkdwn(text: str) -> str:
    """`text` as Slack shows it literally: `&`, `<` and `>` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackNotifier:
    """`Notifier` that sends each notice as a direct message to the recipient's `slack_id`."""

    def __init__(self, roster: Roster, token: SecretStr, *,
                 base_url: str = "https://slack.com/api/", timeout_seconds: float = 15) -> None:
        """Remember where and how to post; nothing is sent until the first notice."""
        self.roster = roster
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._client = WebClient(token=token.get_secret_value(), base_url=self.base_url,
                                 timeout=max(1, round(timeout_seconds)), retry_handlers=[],
                                 logger=_quiet)

    def __repr__(self) -> str:
        return f"SlackNotifier({self.base_url})"

    def text(self, notice: Notice) -> str:
        """The message: subject in bold, the body, and the link to act on."""
        body = notice.body if len(notice.body) <= LIMIT else notice.body[:LIMIT] + " …"
        text = f"*{mrkdwn(notice.subject)}*\n{mrkdwn(body)}"
        if notice.link:
            text += f"\n<{notice.link.replace('|', '%7C').replace('>', '%3E')}|Open in Prefect>"
        return text

    def notify(self, notice: Notice) -> None:
        """Post the notice to its person's direct messages.

        Raises:
            NoticeUndelivered: the person has no `slack_id`, or Slack refused (the error
                code and what to check are named); `NoticeUnavailable` when worth retrying.
        """
        person = self.roster.get(notice.to)
        if person is None or not person.slack_id:
            raise NoticeUndelivered(f"{notice.to!r} has no slack_id in roster.yaml")
        try:
            self._client.chat_postMessage(channel=person.slack_id, text=self.text(notice),
                                          unfurl_links=False, unfurl_media=False)
        except SlackApiError as exc:
            raise _refusal(exc, notice.to) from None
        except (SlackClientError, TimeoutError, OSError, ValueError) as exc:
            raise NoticeUnavailable(f"cannot reach Slack at {self.base_url} for the notice to "
                                    f"{notice.to}: {type(exc).__name__}") from None
        log.info("notice to %s by Slack (%s%s): %s", notice.to, notice.kind,
                 f", {notice.change_id}" if notice.change_id else "", notice.subject)


def _refusal(exc: SlackApiError, to: str) -> NoticeUndelivered:
    """What Slack's refusal means: retry (with its `Retry-After`) or name the fix."""
    response = exc.response
    data = response.data if isinstance(response.data, dict) else {}
    error = data.get("error")
    code = error if isinstance(error, str) and ERROR_CODE.match(error) else None
    status = response.status_code
    said = f"Slack refused the notice to {to}: HTTP {status}" + (f", {code}" if code else "")
    if status == 429 or status >= 500 or code in TRANSIENT_ERRORS or code is None:
        headers = {k.lower(): v for k, v in (response.headers or {}).items()}
        wait = headers.get("retry-after")
        wait = wait[0] if isinstance(wait, list) and wait else wait
        return NoticeUnavailable(said if code else f"{said}, an answer that is not Slack's",
                                 retry_after_seconds(wait if isinstance(wait, str) else None,
                                                     datetime.now(UTC)))
    hint = HINTS.get(code or "")
    return NoticeUndelivered(f"{said} ({hint})" if hint else said)
