"""One-time codes that make an approval given in the Prefect UI attributable.

Prefect OSS does not know who pressed Resume, so when changeflow asks for a decision it
sends each eligible person a code of their own, bound to the flow run, the role and the
person, and valid until the wait ends. Only a digest is recorded; the decision counts
only with the right code for that person, run and role, before it expires.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
"""Unambiguous characters (no 0/O, 1/I/L): codes are read off a chat message or e-mail."""

CODE_LENGTH = 8


def code_digest(code: str, *, run_id: str, role: str, person_id: str, salt: str) -> str:
    """The digest recorded for a code: sha256 over the code and what it is bound to."""
    text = "\x1f".join((normalise(code), run_id, role, person_id, salt))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise(code: str) -> str:
    """Codes are compared without case, spaces or dashes."""
    return "".join(code.split()).replace("-", "").upper()


def code_problem(code: str, *, person_id: str, run_id: str, role: str, salt: str,
                 digests: dict[str, str], expires_at: datetime, now: datetime) -> str | None:
    """Why a code does not authorise `person_id` to decide for `role` in `run_id`, or None.

    Args:
        code: what was typed into the form.
        person_id: who the form says is deciding.
        run_id: the flow run waiting for the decision.
        role: the role being decided.
        salt: the request's salt.
        digests: the digests issued for this request, by person id.
        expires_at: when the request's codes stop working.
        now: the current time.
    """
    if now >= expires_at:
        return f"the code expired at {expires_at.isoformat()}"
    expected = digests.get(person_id)
    if expected is None:
        return f"{person_id!r} was not sent a code for this {role} decision"
    given = code_digest(code, run_id=run_id, role=role, person_id=person_id, salt=salt)
    if not hmac.compare_digest(given, expected):
        others = [p for p, d in digests.items() if p != person_id and hmac.compare_digest(
            code_digest(code, run_id=run_id, role=role, person_id=p, salt=salt), d)]
        if others:
            return f"the code belongs to {others[0]!r}, not {person_id!r}"
        return "the code is wrong for this person, run and role"
    return None
