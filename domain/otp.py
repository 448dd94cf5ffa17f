"""One-time codes that make an approval given in the Prefect UI attributable.

Prefect OSS does not know who pressed Resume, so when changeflow asks for a decision it
sends each eligible person a code of their own, bound to the flow run, the role and the
person, and valid until the wait ends. Only a digest is recorded, and it is keyed: an
HMAC-SHA256 under a key that neither the change log's database nor the evidence pack
holds (`integrations.chain_keys` derives it from the chain key). A copy of the log or of
a pack therefore does not let anyone test guessed codes offline; guessing online is
capped (`ApprovalCodesPolicy.max_wrong_codes`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Literal

from domain.models import Frozen

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
"""Unambiguous characters (no 0/O, 1/I/L): codes are read off a chat message or e-mail."""

CODE_LENGTH = 8

CodeRefusalKind = Literal["expired", "not_sent", "wrong_code"]


class CodeRefusal(Frozen):
    """Why a code does not authorise an answer.

    Attributes:
        kind: `expired` (the wait is over), `not_sent` (the person was not sent a code for
            this decision) or `wrong_code` (a guess, a replay, or someone else's code:
            these count towards the request's cap of wrong codes).
        reason: a sentence for the change log; never the code.
    """

    kind: CodeRefusalKind
    reason: str


def code_digest(code: str, *, key: bytes, run_id: str, role: str, person_id: str,
                salt: str) -> str:
    """The digest recorded for a code: HMAC-SHA256 under `key` over the code and its binding."""
    text = "\x1f".join((normalise(code), run_id, role, person_id, salt))
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def normalise(code: str) -> str:
    """Codes are compared without case, spaces or dashes."""
    return "".join(code.split()).replace("-", "").upper()


def code_problem(code: str, *, key: bytes, person_id: str, run_id: str, role: str,
                 salt: str, digests: dict[str, str], expires_at: datetime,
                 now: datetime) -> CodeRefusal | None:
    """Why a code does not authorise `person_id` to decide for `role` in `run_id`, or None.

    Args:
        code: what was typed into the form.
        key: the key the request's digests were made under.
        person_id: who the form says is deciding.
        run_id: the flow run waiting for the decision.
        role: the role being decided.
        salt: the request's salt.
        digests: the digests of the codes in force for this request, by person id.
        expires_at: when the request's codes stop working.
        now: the current time.
    """
    if now >= expires_at:
        return CodeRefusal(kind="expired", reason=f"the code expired at {expires_at.isoformat()}")
    expected = digests.get(person_id)
    if expected is None:
        return CodeRefusal(kind="not_sent",
                           reason=f"{person_id!r} was not sent a code for this {role} decision")

    def digest(person: str) -> str:
        return code_digest(code, key=key, run_id=run_id, role=role, person_id=person, salt=salt)

    if not hmac.compare_digest(digest(person_id), expected):
        others = [p for p, d in digests.items()
                  if p != person_id and hmac.compare_digest(digest(p), d)]
        if others:
            return CodeRefusal(kind="wrong_code",
                               reason=f"the code belongs to {others[0]!r}, not {person_id!r}")
        return CodeRefusal(kind="wrong_code",
                           reason="the code is wrong for this person, run and role")
    return None
