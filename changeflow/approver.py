"""A scripted approver: answers waiting runs the way a person does in the Prefect UI.

It reads the one-time codes changeflow sent (from the local outbox, or from the mail a
local mail server received), and for each run
that is paused or suspended waiting for a decision it submits the form through
Prefect's API: decision, approver, code, comment. The demo and the tests use it; it
holds no privilege a person in the UI does not have.
"""

from __future__ import annotations

import contextvars
import email.policy
import mailbox
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from prefect.input.actions import read_flow_run_input

from domain.models import Roster
from integrations.outbox import read_outbox


@dataclass(frozen=True)
class CodeNotice:
    """One code changeflow sent: to whom, for which run, role and purpose."""

    to: str
    code: str
    run_id: str
    role: str
    purpose: str
    change_id: str
    approvers: tuple[str, ...] = ()
    """For a verbal approval: who may have given it (the recorder names one)."""


Policy = Callable[[list[CodeNotice], int], dict[str, Any] | None]
"""Given the codes of the pending request and how many answers this approver already
gave it, the form to submit (or None to leave it waiting)."""


def approve_first(notices: list[CodeNotice], attempt: int) -> dict[str, Any] | None:
    """Approve as the first person who was sent a code.

    For a verbal approval, record as the first recorder that the first listed approver
    (the CISO) approved by phone.
    """
    first = notices[0]
    if first.approvers:
        return {"approver": first.approvers[0], "recorder": first.to, "code": first.code,
                "channel": "phone", "comment": f"{first.approvers[0]} approved by phone"}
    return {"decision": "approve", "approver": first.to, "code": first.code,
            "comment": f"approved by the scripted approver for {first.to}"}


def _code_notice(to: str, body: str, change_id: str) -> CodeNotice:
    fields = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
    return CodeNotice(to=to, code=fields["code"], run_id=fields["run"], role=fields["role"],
                      purpose=fields["purpose"], change_id=change_id,
                      approvers=tuple(fields["approvers"].split(", "))
                      if "approvers" in fields else ())


def code_notices(outbox: Path) -> list[CodeNotice]:
    """Every code notice in the outbox, oldest first."""
    return [_code_notice(str(n["to"]), str(n["body"]), str(n.get("change_id")))
            for n in read_outbox(outbox) if n.get("kind") == "approval-code"]


def mailed_codes(maildir: Path, roster: Roster) -> list[CodeNotice]:
    """Every code e-mail in a Maildir (as a mail server delivered them), oldest first.

    The person is the one whose roster e-mail the message was delivered to.
    """
    people = {p.email.lower(): p.id for p in roster.people.values()}
    found = []
    for message in mail_messages(maildir):
        if message["X-Changeflow-Kind"] != "approval-code":
            continue
        text = message.get_body(("plain",))
        to = people.get(parseaddr(str(message["To"]))[1].lower())
        if to is not None and isinstance(text, EmailMessage):
            found.append(_code_notice(to, text.get_content(),
                                      str(message["X-Changeflow-Change"])))
    return found


def mail_messages(maildir: Path) -> list[EmailMessage]:
    """The messages of a Maildir in the order they were delivered."""
    if not (maildir / "new").is_dir():
        return []
    box = mailbox.Maildir(maildir, create=False)
    delivered = sorted((box.get_message(key).get_date(), key) for key in box.keys())
    return [message_from_bytes(box.get_bytes(key), _class=EmailMessage,
                               policy=email.policy.default) for _, key in delivered]


class ScriptedApprover:
    """Resumes waiting runs with the codes it was sent, by a policy."""

    def __init__(self, codes: Path | Callable[[], list[CodeNotice]],
                 policy: Policy = approve_first) -> None:
        """Watch for codes and answer with `policy`.

        `codes` is the outbox file, or what reads the codes sent so far (`mailed_codes`).
        """
        self.codes = (codes if callable(codes) else lambda: code_notices(codes))
        self.policy = policy
        self.answers: list[dict[str, Any]] = []
        self._answered: set[tuple[UUID, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def answer_waiting(self) -> int:
        """Answer every run whose form is ready; returns how many were answered.

        A form is answered once: each pause has its own input key, remembered when
        answered, and the server is asked whether a form is saved only for runs that have
        a code waiting and a form not yet answered (many runs may wait at once).
        """
        notices = self.codes()
        answered = 0
        with get_client(sync_client=True) as client:
            waiting = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
        for run in waiting:
            keyset = run.state.state_details.run_input_keyset if run.state else None
            mine = [n for n in notices if n.run_id == str(run.id)]
            if not keyset or not mine or (run.id, keyset["response"]) in self._answered:
                continue
            if read_flow_run_input(keyset["schema"], flow_run_id=run.id) is None:
                continue  # the form is not saved yet
            latest = (mine[-1].role, mine[-1].purpose)
            pending = list({n.to: n for n in mine  # each person's latest code
                            if (n.role, n.purpose) == latest}.values())
            tries = sum(1 for a in self.answers if (a["run_id"], a["role"], a["purpose"])
                        == (str(run.id), *latest))
            form = self.policy(pending, tries)
            if form is None:
                continue
            resume_flow_run(UUID(str(run.id)), run_input=form)
            self._answered.add((run.id, keyset["response"]))
            self.answers.append({"run_id": str(run.id), "role": latest[0],
                                 "purpose": latest[1], "change_id": pending[0].change_id,
                                 **form})
            answered += 1
        return answered

    def start(self, interval: float = 0.3) -> ScriptedApprover:
        """Answer in a background thread until `stop()`."""
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.answer_waiting()
                except Exception:  # noqa: BLE001 - a run resumed meanwhile; try next round
                    continue

        context = contextvars.copy_context()  # the caller's Prefect settings (API URL)
        self._thread = threading.Thread(target=context.run, args=(loop,),
                                        name="scripted-approver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ScriptedApprover:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
