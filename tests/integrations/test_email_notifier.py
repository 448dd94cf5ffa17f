"""Notices by e-mail, against a real SMTP server on 127.0.0.1 (aiosmtpd).

The server speaks STARTTLS (or implicit TLS) with a certificate made here, requires a
login, and keeps every message it accepts; the tests read them as a mail client would.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from changeflow.prefect_server import free_port
from config.loader import ConfigError, load_config
from config.settings import PROJECT_ROOT, Settings
from domain.models import Notice
from integrations.email_notifier import EmailNotifier
from integrations.factory import open_notifiers
from integrations.ports import NoticeUnavailable, NoticeUndelivered

ROSTER = load_config(PROJECT_ROOT / "config").roster
USER, PASSWORD = "changeflow", "witness-smtp-3b9e1c"
"""The login the server accepts; the password must appear in no error and no log line."""
CODE_NOTICE = Notice(to="erin", kind="approval-code", change_id="CHG-101",
                     subject="CHG-101: your review decision as engineering_lead is needed",
                     body="Paginate <the> orders list & more\ncode: K7QF-M2XP\nrun: r-1")


@dataclass
class Mailbox:
    """What the server accepted: each message with its envelope."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                  data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate and key for 127.0.0.1, in one PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp_path_factory.mktemp("smtp") / "server.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return path


def _context(certificate: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate)
    return context


@dataclass
class Server:
    port: int
    mailbox: Mailbox


def _serve(certificate: Path, implicit: bool) -> Iterator[Server]:
    mailbox, port = Mailbox(), free_port()
    tls = _context(certificate)
    # aiosmtpd counts only STARTTLS as TLS for AUTH; on implicit TLS the whole
    # connection is encrypted before the first byte.
    kwargs: dict[str, Any] = ({"ssl_context": tls, "auth_require_tls": False} if implicit
                              else {"tls_context": tls, "require_starttls": True,
                                    "auth_require_tls": True})
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            authenticator=_authenticate, **kwargs)
    controller.start()
    try:
        yield Server(port, mailbox)
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def starttls(certificate: Path) -> Iterator[Server]:
    yield from _serve(certificate, implicit=False)


@pytest.fixture(scope="module")
def smtps(certificate: Path) -> Iterator[Server]:
    yield from _serve(certificate, implicit=True)


def notifier(server: Server, certificate: Path, **changes: Any) -> EmailNotifier:
    options: dict[str, Any] = {"port": server.port, "security": "starttls", "username": USER,
                               "password": SecretStr(PASSWORD), "ca_file": certificate,
                               "timeout_seconds": 5, **changes}
    return EmailNotifier(ROSTER, "127.0.0.1", "changeflow@example.com", **options)


def test_a_code_reaches_its_person_alone_in_text_and_html(
        starttls: Server, certificate: Path) -> None:
    before = len(starttls.mailbox.messages)
    notifier(starttls, certificate).notify(CODE_NOTICE)
    ((sender, recipients, mail),) = starttls.mailbox.messages[before:]
    assert (sender, recipients) == ("changeflow@example.com", ["erin@example.com"])
    assert mail["To"] == "Erin Lead <erin@example.com>"
    assert mail["Subject"] == CODE_NOTICE.subject
    assert (mail["X-Changeflow-Kind"], mail["X-Changeflow-Change"]) == ("approval-code",
                                                                        "CHG-101")
    text = mail.get_body(("plain",))
    page = mail.get_body(("html",))
    assert text is not None and page is not None
    assert "code: K7QF-M2XP" in text.get_content()
    assert "Paginate &lt;the&gt; orders list &amp; more<br>" in page.get_content()


def test_implicit_tls_on_its_own_port(smtps: Server, certificate: Path) -> None:
    notifier(smtps, certificate, security="tls").notify(CODE_NOTICE)
    assert [m[1] for m in smtps.mailbox.messages] == [["erin@example.com"]]


def test_a_certificate_that_is_not_trusted_is_refused(starttls: Server) -> None:
    with pytest.raises(NoticeUndelivered, match="is not trusted; set CHANGEFLOW_SMTP_CA_FILE"
                       ) as raised:
        notifier(starttls, None).notify(CODE_NOTICE)  # type: ignore[arg-type]
    assert not isinstance(raised.value, NoticeUnavailable)  # not worth retrying


def test_a_wrong_password_is_named_without_the_password(
        starttls: Server, certificate: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    before = len(starttls.mailbox.messages)
    with pytest.raises(NoticeUndelivered, match="refused the login of 'changeflow' "
                                                r"\(535\); check CHANGEFLOW_SMTP_USERNAME"):
        notifier(starttls, certificate, password=SecretStr("wrong-" + PASSWORD)).notify(
            CODE_NOTICE)
    assert len(starttls.mailbox.messages) == before
    assert PASSWORD not in caplog.text
    assert "K7QF" not in caplog.text  # nor the code


def test_a_person_outside_the_roster_and_a_server_down_are_named(
        starttls: Server, certificate: Path) -> None:
    with pytest.raises(NoticeUndelivered, match="'mallory' is not in the roster"):
        notifier(starttls, certificate).notify(CODE_NOTICE.model_copy(update={"to": "mallory"}))
    down = Server(free_port(), Mailbox())
    with pytest.raises(NoticeUndelivered, match=r"cannot reach the SMTP server 127\.0\.0\.1:"
                                                r"\d+ for the notice to erin: "
                                                "ConnectionRefusedError") as raised:
        notifier(down, certificate).notify(CODE_NOTICE)
    assert isinstance(raised.value, NoticeUnavailable)  # worth retrying
    assert "K7QF" not in str(raised.value) and PASSWORD not in str(raised.value)


def test_the_outbox_warns_once_when_the_prefect_server_is_not_local(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(PROJECT_ROOT / "config")
    settings = Settings(var_dir=tmp_path)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        open_notifiers(settings, config)
    with temporary_settings(updates={PREFECT_API_URL: "https://prefect.internal/api"}):
        open_notifiers(settings, config)
        open_notifiers(settings, config)
    warned = [r.getMessage() for r in caplog.records if r.name == "changeflow.notify"]
    assert warned == ["notices go to the local outbox file while the Prefect server is "
                      "prefect.internal: nobody else receives their codes there; set "
                      "CHANGEFLOW_NOTIFIERS (email, slack) for a team"]


def test_the_settings_choose_the_notifiers_and_name_what_is_missing(tmp_path: Path) -> None:
    config = load_config(PROJECT_ROOT / "config")
    with pytest.raises(ConfigError) as missing:
        open_notifiers(Settings(notifiers=["email", "slack"], var_dir=tmp_path), config)
    assert [str(p) for p in missing.value.problems] == [
        "settings: CHANGEFLOW_SMTP_HOST: not set (needed with email among CHANGEFLOW_NOTIFIERS)",
        "settings: CHANGEFLOW_SMTP_FROM: not set (needed with email among CHANGEFLOW_NOTIFIERS)",
        "settings: CHANGEFLOW_SLACK_TOKEN: not set (needed with slack among "
        "CHANGEFLOW_NOTIFIERS); or name a Secret block in CHANGEFLOW_SLACK_TOKEN_BLOCK"]
    chosen = open_notifiers(Settings(notifiers=["slack", "email"], smtp_host="mail.example.com",
                                     smtp_from="changeflow@example.com", var_dir=tmp_path,
                                     slack_token=SecretStr("xoxb-witness")), config)
    assert list(chosen) == ["slack", "email"]  # the settings' order
    email = chosen["email"]
    assert isinstance(email, EmailNotifier) and (email.port, email.security) == (
        587, "starttls")
    assert "witness" not in repr(chosen)
    with pytest.raises(ValueError, match="notifiers\n  Value error, email is listed more "
                                         "than once"):
        Settings(notifiers="email,outbox,email")
