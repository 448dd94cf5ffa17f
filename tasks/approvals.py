"""Policy section 2, steps 2, 3 and 5: asking people for attributable decisions.

A request sends each eligible person a one-time code through the notifier and records
only the codes' digests. A decision typed into the Prefect UI form counts only with the
right code for that person, run and role before the wait ends; anything else is
recorded as a failed attempt. Accepted decisions are recorded, then judged by the
domain rules.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import Field, create_model

from domain.approvals import ApprovalVerdict, recorded_verdict, refusal_of
from domain.events import (
    ApprovalAttemptFailed,
    ApprovalCodesReissued,
    ApprovalRequested,
    AttemptKind,
    Decided,
    EventType,
    payload_of,
)
from domain.history import approvals_of
from domain.models import Approval, ChangeEvent, ChangeRequest, Decision, Notice, Purpose
from domain.notices import CODE_KIND
from domain.otp import CODE_ALPHABET, CODE_LENGTH, code_digest, code_problem
from integrations.chain_keys import ChainKeyError
from integrations.factory import Adapters
from tasks.common import ChangeRejected, ChangeStopped, events_of, record, step
from tasks.notices import notify, personal_channels, run_link, send, tell_author
from tasks.tickets import tell

UI_CHANNEL = "prefect-ui"

FINAL = ("A rejected change is final: open a new change ticket that answers this, and "
         "start it with change-request.")

APPROVAL_PURPOSES = frozenset({Purpose.REVIEW, Purpose.SELF_APPROVAL, Purpose.SIGN_OFF,
                               Purpose.VERBAL})
"""Requests whose expiry rejects the change. Others (availability, an emergency's
follow-up obligations) only stop the run that asked."""


class ApprovalForm(RunInput):
    """The resume form shown in the Prefect UI. `approver` becomes a list of the roster."""

    decision: Literal["approve", "decline"] = Field(description="Your decision")
    approver: str = Field(description="Who you are")
    code: str = Field(description="The one-time code changeflow sent you", min_length=1)
    comment: str = Field(default="", description="Why (shown on the ticket and in the log)")


def _as_enum(schema: dict[str, Any]) -> None:
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]


def dropdown(options: list[str], description: str) -> tuple[Any, Any]:
    """A form field that accepts one of `options`, shown as a dropdown in the Prefect UI.

    With a single option pydantic writes the schema as a `const`, which the UI shows as
    an empty, locked box and then refuses as missing; it is written as a one-item
    `enum` instead, so the only eligible person can still choose themselves.
    """
    choice: Any = Literal[tuple(options)]
    return choice, Field(description=description, json_schema_extra=_as_enum)


def everyone(a: Adapters, first: list[str]) -> list[str]:
    """Every roster id, `first` (the people asked) leading.

    The form lists everyone so that an attempt by anyone (the author, someone without the
    role, a shared account) reaches changeflow and is recorded with its reason, instead of
    being refused by the form before changeflow sees it.
    """
    return list(dict.fromkeys([*first, *sorted(a.config.roster.people)]))


def form_for(people: list[str], question: str | None = None) -> type[ApprovalForm]:
    """The form with `approver` a dropdown of `people` (see `everyone`).

    `question` replaces "Your decision" as what the decision field asks.
    """
    asks: dict[str, Any] = {} if question is None else {"decision": (
        Literal["approve", "decline"], Field(description=question))}
    return create_model("ApprovalForm", __base__=ApprovalForm,
                        approver=dropdown(people, "Who you are"), **asks)


@dataclass(frozen=True)
class ApprovalRequest:
    """An open request for one decision: what was asked, of whom, until when.

    `digests` are those of the codes in force (later reissues applied); `wrong_codes`
    counts the wrong codes since every code was last issued; `unreached` are the people
    the latest issue of their code did not reach.
    """

    change_id: str
    role: str
    purpose: str
    run_id: str
    salt: str
    digests: dict[str, str]
    eligible: list[str]
    expires_at: datetime
    key_id: str = ""
    approvers: tuple[str, ...] = ()
    wrong_codes: int = 0
    unreached: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Identifies the request within its run (Prefect keys: lowercase, digits, dashes)."""
        return f"{self.purpose}-{self.role}".lower().replace("_", "-")

    def waiting_for(self) -> str:
        """What a run waiting on this request waits for, in words (its state's message)."""
        asked = [p for p in self.eligible if p in self.digests] or self.eligible
        said = (f"the {self.purpose} decision as {self.role} from {' or '.join(asked)}, "
                f"until {self.expires_at:%Y-%m-%d %H:%M} UTC")
        return said + (f" (not reached: {', '.join(self.unreached)})" if self.unreached else "")

    def about(self, p: ApprovalRequested | ApprovalCodesReissued | ApprovalAttemptFailed
              ) -> bool:
        """Whether a payload belongs to this request (run, role and purpose)."""
        return (p.run_id, p.role, p.purpose) == (self.run_id, self.role, self.purpose)


def _new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:]}"


def _request(event: ChangeEvent) -> ApprovalRequest:
    p = payload_of(event, ApprovalRequested)
    return ApprovalRequest(event.change_id, p.role, p.purpose, p.run_id, p.salt, p.digests,
                           p.eligible, datetime.fromisoformat(p.expires_at), p.key_id,
                           tuple(p.approvers), unreached=tuple(p.unreached))


def _open_request(a: Adapters, change_id: str, role: str, purpose: str,
                  run_id: str) -> ApprovalRequest | None:
    """The latest request of the run for `role` and `purpose`, its reissues applied."""
    events = events_of(a, change_id, EventType.APPROVAL_REQUESTED,
                       EventType.APPROVAL_CODES_REISSUED, EventType.APPROVAL_ATTEMPT_FAILED)
    found: ApprovalRequest | None = None
    for event in events:
        if event.type == EventType.APPROVAL_REQUESTED:
            p = payload_of(event, ApprovalRequested)
            if (p.role, p.purpose, p.run_id) == (role, purpose, run_id):
                found = _request(event)
        elif found is not None and event.type == EventType.APPROVAL_CODES_REISSUED:
            r = payload_of(event, ApprovalCodesReissued)
            if found.about(r):
                # A code replaced by one that reached nobody works no longer either.
                kept = {} if r.withdrawn else {person: digest for person, digest
                                               in found.digests.items()
                                               if person not in r.unreached}
                unreached = [p for p in found.unreached if p not in r.digests
                             and p not in r.unreached] + r.unreached
                found = replace(found, digests={**kept, **r.digests}, key_id=r.key_id,
                                wrong_codes=0 if r.withdrawn else found.wrong_codes,
                                unreached=tuple(unreached))
        elif found is not None:
            f = payload_of(event, ApprovalAttemptFailed)
            if found.about(f) and f.kind == "wrong_code":
                found = replace(found, wrong_codes=found.wrong_codes + 1)
    return found


def current(a: Adapters, request: ApprovalRequest) -> ApprovalRequest:
    """`request` as the change log holds it now (codes reissued, wrong codes counted)."""
    found = _open_request(a, request.change_id, request.role, request.purpose, request.run_id)
    return found or request


def _send_codes(a: Adapters, request: ApprovalRequest, people: list[str], subject: str,
                intro: str) -> tuple[str, dict[str, str], list[str]]:
    """Send each of `people` a new code for `request`, each by a personal channel.

    Returns the key id, the digests of the codes delivered, and who no channel reached:
    they hold no code. Those are named to the alarm role and the team channels.
    """
    key_id, key = a.change_log.keys.code_key()
    heard = f"\napprovers: {', '.join(request.approvers)}" if request.approvers else ""
    link = run_link(request.run_id)
    where = (f"Open {link}" if link else f"Open flow run {request.run_id} in Prefect")
    digests, unreached = {}, []
    for person_id in people:
        code = _new_code()
        delivered = send(a, Notice(
            to=person_id, kind=CODE_KIND, change_id=request.change_id, subject=subject,
            link=link,
            body=(f"{intro}\n{where}, choose Resume, and enter this code with your "
                  f"decision.\ncode: {code}\nrun: {request.run_id}\nrole: {request.role}\n"
                  f"purpose: {request.purpose}\nexpires: {request.expires_at.isoformat()}"
                  f"{heard}")))
        if delivered is None:
            unreached.append(person_id)
        else:
            digests[person_id] = code_digest(code, key=key, run_id=request.run_id,
                                             role=request.role, person_id=person_id,
                                             salt=request.salt)
    if unreached:
        notify(a, [p.id for p in a.config.roster.holding(a.config.policy.approval_codes
                                                          .alarm_role)], Notice(
            to="", kind="codes-undelivered", change_id=request.change_id, link=link,
            subject=f"{request.change_id}: a code for the {request.purpose} decision as "
                    f"{request.role} reached nobody",
            body=f"No channel could deliver the one-time code of {', '.join(unreached)} "
                 f"(flow run {request.run_id}); they cannot answer until they are reached. "
                 "Each failed delivery is in the change log (notice_failed)."))
    return key_id, digests, unreached


@step("request-decision")
def request_decision(a: Adapters, change: ChangeRequest, role: str, purpose: str,
                     eligible: list[str], run_id: str, approvers: list[str] | None = None,
                     in_ticket_system: str | None = None) -> ApprovalRequest:
    """Send each eligible person a code and record the request (once per run and role).

    A run that starts again from the top finds its request in the change log and sends
    nothing twice. With `approvers`, the eligible are recorders of a verbal approval
    that one of `approvers` gave them. With `in_ticket_system` (the JSM approval or the
    approving transition's status), the decision is taken in the ticket system: no codes
    are sent, only a notice where to decide; the sync records it.

    Raises:
        ChangeStopped: nobody in the roster may decide for this role (fails closed).
    """
    existing = _open_request(a, change.id, role, purpose, run_id)
    if existing is not None:
        if existing.unreached:  # each new start tries again to reach them
            _reissue(a, existing, list(existing.unreached),
                     "the earlier code could not be delivered", withdrawn=False)
            existing = current(a, existing)
        return _someone_reached(existing)
    if not eligible:
        raise ChangeStopped(f"nobody in the roster may decide as {role!r} for {change.id} "
                            "(the author, shared accounts and who approved in another role are "
                            "excluded)")
    expires_at = a.now() + timedelta(hours=a.settings.approval_timeout_hours)
    if in_ticket_system is not None:
        return _request_in_ticket_system(a, change, role, purpose, eligible, run_id,
                                         expires_at, in_ticket_system)
    eligible = reachable(a, change, role, eligible)
    request = ApprovalRequest(change.id, role, purpose, run_id, secrets.token_hex(16), {},
                              eligible, expires_at, approvers=tuple(approvers or ()))
    ask = (f"your {purpose} decision as {role} is needed" if approvers is None else
           f"record the verbal approval you heard from {' or '.join(approvers)}")
    key_id, digests, unreached = _send_codes(a, request, eligible, f"{change.id}: {ask}",
                                             change.summary)
    record(a, change.id, EventType.APPROVAL_REQUESTED, role=role, purpose=purpose, run_id=run_id,
           salt=request.salt, digests=digests, eligible=eligible,
           expires_at=expires_at.isoformat(), key_id=key_id, approvers=list(approvers or ()),
           unreached=unreached)
    return _someone_reached(replace(request, digests=digests, key_id=key_id,
                                    unreached=tuple(unreached)))


def _someone_reached(request: ApprovalRequest) -> ApprovalRequest:
    """`request`, if a code of it is in force; waiting makes no sense otherwise.

    Raises:
        ChangeStopped: no code reached anyone; the request stays open and the next run of
            the change sends the codes again.
    """
    if request.digests or not request.unreached:
        return request
    raise ChangeStopped(f"{request.change_id}: no code for the {request.purpose} decision as "
                        f"{request.role} could be delivered ({', '.join(request.unreached)}); "
                        "the request stays open: once a notifier delivers again, run the "
                        "change again and the codes are sent again")


def reachable(a: Adapters, change: ChangeRequest, role: str, eligible: list[str]) -> list[str]:
    """Who of `eligible` a personal channel reaches: only they can be sent a code.

    Raises:
        ChangeStopped: none of them can be reached (each is named).
    """
    found = [p for p in eligible if personal_channels(a, p)]
    if not found:
        raise ChangeStopped(f"nobody who may decide as {role!r} for {change.id} can be sent a "
                            f"one-time code: {', '.join(eligible)} have no personal channel "
                            f"among {', '.join(a.settings.notifiers)} (give them a slack_id, "
                            "or add a notifier; `changeflow check-config` lists them)")
    return found


def _request_in_ticket_system(a: Adapters, change: ChangeRequest, role: str, purpose: str,
                              eligible: list[str], run_id: str, expires_at: datetime,
                              where: str) -> ApprovalRequest:
    notify(a, eligible, Notice(
        to="", kind="approval-request", change_id=change.id, link=a.tickets.web_url(change.id),
        subject=f"{change.id}: your {purpose} decision as {role} is needed in Jira",
        body=f"{change.summary}\nDecide in Jira: {where!r} on {change.id}.\n"
             f"expires: {expires_at.isoformat()}"))
    record(a, change.id, EventType.APPROVAL_REQUESTED, role=role, purpose=purpose, run_id=run_id,
           salt="", digests={}, eligible=eligible, expires_at=expires_at.isoformat(),
           channel="jira", where=where)
    return ApprovalRequest(change.id, role, purpose, run_id, "", {}, eligible, expires_at)


def refuse_attempt(a: Adapters, request: ApprovalRequest, claimed: str, reason: str,
                   kind: AttemptKind) -> str:
    """Record a refused answer as a failed attempt, and tell who it claimed to be.

    The person named learns at once that their answer did not count (or, if someone
    else answered in their name, that somebody tried). Returns `reason`.
    """
    record(a, request.change_id, EventType.APPROVAL_ATTEMPT_FAILED, role=request.role,
           purpose=request.purpose, run_id=request.run_id, claimed=claimed, reason=reason,
           kind=kind)
    if a.config.roster.get(claimed) is not None:
        link = run_link(request.run_id)
        where = link or f"flow run {request.run_id} in Prefect"
        send(a, Notice(
            to=claimed, kind="code-refused", change_id=request.change_id, link=link,
            subject=f"{request.change_id}: your {request.purpose} answer as {request.role} "
                    "was refused",
            body=f"Your answer in {request.change_id}'s form was refused: {reason}.\n"
                 f"Nothing was recorded as your decision. Open the run again ({where}), "
                 "choose Resume and answer with the code changeflow sent you. If you did "
                 "not answer, someone tried in your name: tell the CISO."))
    return reason


def _reissue(a: Adapters, request: ApprovalRequest, people: list[str], reason: str,
             withdrawn: bool) -> None:
    """New codes for `people` (every eligible person when `withdrawn`), recorded first."""
    subject = (f"{request.change_id}: a new code for your {request.purpose} decision as "
               f"{request.role}")
    key_id, digests, unreached = _send_codes(a, request, people, subject,
                                             f"Your earlier code no longer works: {reason}.")
    record(a, request.change_id, EventType.APPROVAL_CODES_REISSUED, role=request.role,
           purpose=request.purpose, run_id=request.run_id, digests=digests, key_id=key_id,
           reason=reason, withdrawn=withdrawn, unreached=unreached)


def _withdraw_on_guessing(a: Adapters, request: ApprovalRequest) -> None:
    """After too many wrong codes, withdraw every code, send new ones, tell the alarm role."""
    limits = a.config.policy.approval_codes
    if request.wrong_codes < limits.max_wrong_codes:
        return
    why = (f"{request.wrong_codes} wrong codes were entered for the {request.purpose} "
           f"decision as {request.role} on {request.change_id}")
    _reissue(a, request, request.eligible, why, withdrawn=True)
    told = [p.id for p in a.config.roster.holding(limits.alarm_role)]
    notify(a, told, Notice(
        to="", kind="integrity-alarm", change_id=request.change_id,
        link=run_link(request.run_id),
        subject=f"{request.change_id}: codes withdrawn after repeated wrong codes",
        body=(f"{why} (flow run {request.run_id}). Every code of the request was "
              "withdrawn and new ones sent to the people asked. Someone may be guessing; "
              "the failed attempts and who they claimed to be are in the change log.")))
    record(a, request.change_id, EventType.NOTIFICATION_SENT, to=told, about=why)


def judge_answer(a: Adapters, request: ApprovalRequest, claimed: str, code: str,
                 not_asked: Callable[[], str | None],
                 rules: Callable[[], str | None]) -> str | None:
    """Whether an answer with `code`, claiming to be `claimed`, may be recorded.

    A wrong, expired or never-sent code is a failed attempt (`not_asked` says why
    `claimed` was not asked, with the domain's reason); wrong codes count towards the
    policy's cap, after which every code is withdrawn and new ones sent. A right code in
    an answer that `rules` refuse is spent: the attempt is recorded and the person sent a
    new code. Returns why the answer was refused, or None: the caller records it.
    """
    request = current(a, request)
    try:
        _, key = a.change_log.keys.code_key(request.key_id)
    except ChainKeyError:
        refused = refuse_attempt(a, request, claimed, f"the request's codes were issued under "
                                 f"chain key {request.key_id!r}, which is no longer configured; "
                                 "new codes were sent", "wrong_code")
        _reissue(a, request, request.eligible, "the chain key was rotated", withdrawn=True)
        return refused
    refusal = code_problem(code, key=key, person_id=claimed, run_id=request.run_id,
                           role=request.role, salt=request.salt, digests=request.digests,
                           expires_at=request.expires_at, now=a.now())
    if refusal is not None:
        reason = (not_asked() or refusal.reason) if refusal.kind == "not_sent" else refusal.reason
        refuse_attempt(a, request, claimed, reason, refusal.kind)
        if refusal.kind == "wrong_code":  # this one counts too
            _withdraw_on_guessing(a, replace(request, wrong_codes=request.wrong_codes + 1))
        return reason
    problem = rules()
    if problem is None:
        return None
    reason = f"{problem}; the code is spent and a new one was sent"
    refuse_attempt(a, request, claimed, reason, "refused")
    _reissue(a, request, [claimed], problem, withdrawn=False)
    return reason


def not_asked_reason(a: Adapters, change: ChangeRequest, request: ApprovalRequest,
                     claimed: str) -> str | None:
    """Why `claimed` was not asked for `request`.

    For an approval, the domain's judgement of one by them; else who was asked.
    """
    if claimed in request.unreached:
        return (f"no channel could deliver a code to {claimed}, so none is in force for "
                "them (the failed deliveries are in the change log)")
    if request.purpose in APPROVAL_PURPOSES:
        candidate = Approval(role=request.role, person_id=claimed, decision=Decision.APPROVE,
                             at=a.now(), channel=UI_CHANNEL)
        why = refusal_of(change, candidate, approvals_of(events_of(a, change)),
                         a.config.policy, a.config.roster)
        if why:
            return why
    return (f"{claimed!r} was not asked for this {request.purpose} decision as "
            f"{request.role} (asked: {', '.join(request.eligible)})")


@step("judge-decision")
def judge_decision(a: Adapters, change: ChangeRequest, request: ApprovalRequest,
                   answer: ApprovalForm, event_type: str = EventType.APPROVAL_RECORDED,
                   comment_required: str | None = None) -> str | None:
    """Record a decision typed into the form, or refuse it; returns why it was refused.

    See `judge_answer`; a blank comment when `comment_required` names what the comment
    must hold is refused by the rules.
    """
    def rules() -> str | None:
        if comment_required and not answer.comment.strip():
            return f"the comment is empty; it must hold {comment_required}"
        return None

    refused = judge_answer(a, request, answer.approver, answer.code,
                           lambda: not_asked_reason(a, change, request, answer.approver), rules)
    if refused is not None:
        return refused
    record(a, request.change_id, event_type, answer.approver, role=request.role,
           purpose=request.purpose, person_id=answer.approver, decision=answer.decision,
           channel=UI_CHANNEL, comment=answer.comment, run_id=request.run_id)
    return None


@step("refuse-invalid-answer")
def refuse_invalid(a: Adapters, request: ApprovalRequest, claimed: str, reason: str) -> str:
    """Record an answer that does not fit the form as a failed attempt.

    Such an answer is written through the API, past the UI's checks; the form is then
    shown again.
    """
    return refuse_attempt(a, request, claimed, reason, "invalid")


def failed_attempts(a: Adapters, request: ApprovalRequest) -> int:
    """How many refused attempts this request has seen (keys the next form)."""
    return sum(1 for e in events_of(a, request.change_id, EventType.APPROVAL_ATTEMPT_FAILED)
               if request.about(payload_of(e, ApprovalAttemptFailed)))


def verdict(a: Adapters, change: ChangeRequest) -> ApprovalVerdict:
    """The domain's judgement of the recorded approvals for the category's roles."""
    return recorded_verdict(change, events_of(a, change), a.config.policy, a.config.roster)


def decision_of(a: Adapters, change: ChangeRequest, role: str, purpose: str) -> Approval | None:
    """The latest recorded decision for a role and purpose, if any."""
    found = approvals_of(e for e in events_of(a, change, EventType.APPROVAL_RECORDED)
                         if (payload_of(e, Decided).role, payload_of(e, Decided).purpose)
                         == (role, purpose))
    return found[-1] if found else None


@step("expire-request")
def expire_request(a: Adapters, change: ChangeRequest, request: ApprovalRequest) -> ChangeStopped:
    """A wait for an approval that timed out is a rejection, recorded as expired.

    Any other wait (availability, an obligation) that timed out stops only this run, with
    a note. Returns what to raise.
    """
    if request.purpose not in APPROVAL_PURPOSES:
        record(a, change.id, EventType.NOTE, text=f"the {request.purpose} answer as {request.role} "
               f"was not given before {request.expires_at.isoformat()}; nothing was done")
        return ChangeStopped(f"{change.id}: the {request.purpose} answer was not given in time")
    record(a, change.id, EventType.APPROVAL_EXPIRED, role=request.role, purpose=request.purpose,
           expired_at=request.expires_at.isoformat())
    why = (f"nobody decided as {request.role} ({request.purpose}, asked: "
           f"{', '.join(request.eligible)}) before {request.expires_at:%Y-%m-%d %H:%M} UTC")
    tell(a, change.id, f"The {request.purpose} decision as {request.role} was not given in "
         "time: the change is rejected as expired.", "rejected")
    tell_author(a, change.id, change.author, "expired", f"{change.id} expired: {why}",
                f"Your change {change.id} is rejected as expired: {why}. {FINAL}")
    return ChangeRejected(f"{change.id}: the {request.role} decision expired",
                          [why, FINAL])


def expired_requests(a: Adapters, change: ChangeRequest) -> list[ApprovalRequest]:
    """Approval requests that expired with no decision recorded.

    A suspended run whose wait times out is failed by the server without running any
    code, so its expiry is recorded by the next run of the change (or found here).
    """
    decided = {(d.requested_role or d.role, d.purpose)
               for e in events_of(a, change, EventType.APPROVAL_RECORDED)
               for d in [payload_of(e, Decided)]}
    requests = [_request(e) for e in events_of(a, change, EventType.APPROVAL_REQUESTED)]
    return [r for r in requests if r.expires_at <= a.now() and r.purpose in APPROVAL_PURPOSES
            and (r.role, r.purpose) not in decided]


@step("reject-change")
def reject_change(a: Adapters, change: ChangeRequest, step_name: str,
                  reasons: list[str]) -> ChangeStopped:
    """A rejection ends the change: recorded, on the ticket; returns what to raise."""
    record(a, change.id, EventType.CHANGE_REJECTED, step=step_name, reasons=reasons)
    listed = "\n- " + "\n- ".join(reasons)
    tell(a, change.id, f"Rejected in {step_name}:{listed}", "rejected")
    tell_author(a, change.id, change.author, "rejected", f"{change.id} rejected in {step_name}",
                f"Your change {change.id} was rejected in {step_name}:{listed}\n{FINAL}")
    return ChangeRejected(f"{change.id} rejected in {step_name}: " + "; ".join(reasons),
                          [*reasons, FINAL])


@step("grant-approval")
def grant_approval(a: Adapters, change: ChangeRequest, approvers: dict[str, str]) -> None:
    """Record that the review's approvals are complete and hold under the domain rules."""
    record(a, change.id, EventType.APPROVAL_GRANTED, approvers=approvers)
