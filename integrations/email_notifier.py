"""Notices by e-mail over SMTP: each to the person's own address in the roster.

The `Notifier` for a team: a one-time code reaches only the person it was made for. The
connection is encrypted by default (STARTTLS on 587, or implicit TLS on 465), the
server's certificate is checked (against `ca_file` when given), and a login is used when
a username is set. Every connection has a timeout. A message has a plain-text part and
an HTML part (the text, escaped); its subject names the change and what is asked.

A notice that cannot be delivered raises `NoticeUndelivered` (refused: a bad login, an
unknown address) or `NoticeUnavailable` (worth retrying: the server cannot be reached,
timed out or answered 4xx), naming the person and the reason but never the message body
(it may hold a code) nor the password.
"""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from domain.models import Notice, Roster
from integrations.ports import NoticeUnavailable, NoticeUndelivered

log = logging.getLogger("changeflow.notify")

Security = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[Security, int] = {"starttls": 587, "tls": 465, "none": 25}


class EmailNotifier:
    """`Notifier` that mails each notice to the roster e-mail of its recipient."""

    def __init__(self, roster: Roster, host: str, sender: str, *, port: int | None = None,
                 security: Security = "starttls", username: str | None = None,
                 password: SecretStr | None = None, ca_file: Path | None = None,
                 timeout_seconds: float = 15) -> None:
        """Remember where and how to send; nothing is connected until the first notice."""
        self.roster = roster
        self.host, self.port = host, port or DEFAULT_PORTS[security]
        self.sender, self.security = sender, security
        self.username, self._password = username, password
        self.timeout_seconds = timeout_seconds
        self._context = ssl.create_default_context(
            cafile=str(ca_file) if ca_file is not None else None)

    def __repr__(self) -> str:
        return f"EmailNotifier({self.host}:{self.port}, {self.security}, from {self.sender})"

    def message(self, notice: Notice) -> EmailMessage:
        """The e-mail for `notice`: plain text and HTML, addressed to its person.

        Raises:
            NoticeUndelivered: the recipient is not in the roster.
        """
        person = self.roster.get(notice.to)
        if person is None:
            raise NoticeUndelivered(f"{notice.to!r} is not in the roster: no e-mail address")
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = formataddr((person.name, person.email))
        mail["Subject"] = notice.subject
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        mail["X-Changeflow-Kind"] = notice.kind
        if notice.change_id:
            mail["X-Changeflow-Change"] = notice.change_id
        text = notice.body + (f"\n\nOpen: {notice.link}" if notice.link else "")
        mail.set_content(text)
        lines = "<br>\n".join(html.escape(line) for line in notice.body.splitlines())
        action = (f'<p><a href="{html.escape(notice.link)}">Open in Prefect</a></p>'
                  if notice.link else "")
        mail.add_alternative(f"<!doctype html><html><body><p>{lines}</p>{action}</body></html>",
                             subtype="html")
        return mail

    def notify(self, notice: Notice) -> None:
        """Send the notice to its person.

        Raises:
            NoticeUndelivered: the recipient has no address, or the server could not be
                reached, refused the login or refused the message.
        """
        mail = self.message(notice)
        try:
            with self._connect() as smtp:
                if self.username:
                    password = self._password.get_secret_value() if self._password else ""
                    smtp.login(self.username, password)
                refused = smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise NoticeUndelivered(f"the SMTP server {self.host} refused the login of "
                                    f"{self.username!r} ({exc.smtp_code}); check "
                                    "CHANGEFLOW_SMTP_USERNAME and the password") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise NoticeUndelivered(f"the SMTP server refused {notice.to}'s address "
                                    f"({_codes(exc.recipients)})") from None
        except smtplib.SMTPException as exc:
            code = getattr(exc, "smtp_code", 0)
            said = (f"the SMTP server {self.host} refused the notice to {notice.to}: "
                    f"{type(exc).__name__} {code or ''}".rstrip())
            if isinstance(code, int) and 400 <= code < 500 or code == 0:
                raise NoticeUnavailable(said) from None  # 4xx: try again later
            raise NoticeUndelivered(said) from None
        except ssl.SSLCertVerificationError:
            raise NoticeUndelivered(f"the certificate of the SMTP server {self.host}:{self.port} "
                                    "is not trusted; set CHANGEFLOW_SMTP_CA_FILE to its CA "
                                    "certificate (PEM)") from None
        except (TimeoutError, OSError) as exc:
            raise NoticeUnavailable(f"cannot reach the SMTP server {self.host}:{self.port} "
                                    f"for the notice to {notice.to}: "
                                    f"{type(exc).__name__}") from None
        if refused:
            raise NoticeUndelivered(f"the SMTP server refused {notice.to}'s address "
                                    f"({_codes(refused)})")
        log.info("notice to %s by e-mail (%s%s): %s", notice.to, notice.kind,
                 f", {notice.change_id}" if notice.change_id else "", notice.subject)

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_seconds,
                                    context=self._context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)
        try:
            if self.security == "starttls":
                smtp.starttls(context=self._context)
        except BaseException:
            smtp.close()
            raise
        return smtp


def _codes(refused: dict[str, tuple[int, bytes]]) -> str:
    """The SMTP codes of refused recipients, without the server's text."""
    return ", ".join(str(code) for code, _ in refused.values())
