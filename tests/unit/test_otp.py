"""One-time codes: bound to run, role and person; expiring with the wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.otp import code_digest, code_problem

WRONG = "wrong_code: the code is wrong for this person, run and role"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CODES = {"erin": "K7QF-M2XP", "alice": "ZZ93-HHTB"}
KEY = b"k" * 32
DIGESTS = {p: code_digest(c, key=KEY, run_id="run-1", role="engineering_lead", person_id=p,
                          salt="s") for p, c in CODES.items()}


def problem(code: str, person: str = "erin", run_id: str = "run-1",
            role: str = "engineering_lead", now: datetime = NOW) -> str | None:
    refusal = code_problem(code, key=KEY, person_id=person, run_id=run_id, role=role,
                           salt="s", digests=DIGESTS, expires_at=NOW + timedelta(hours=1),
                           now=now)
    return None if refusal is None else f"{refusal.kind}: {refusal.reason}"


@pytest.mark.parametrize("code, kwargs, expected", [
    ("K7QF-M2XP", {}, None),
    ("k7qf m2xp", {}, None),  # case, spaces and dashes do not matter
    ("K7QF-M2XQ", {}, WRONG),
    ("ZZ93-HHTB", {}, "wrong_code: the code belongs to 'alice', not 'erin'"),
    ("K7QF-M2XP", {"run_id": "run-2"}, WRONG),
    ("K7QF-M2XP", {"role": "qa"}, WRONG),
    ("K7QF-M2XP", {"person": "quinn"}, "not_sent: 'quinn' was not sent a code for this "
                                       "engineering_lead decision"),
    ("K7QF-M2XP", {"now": NOW + timedelta(hours=1)}, "expired: the code expired at "
                                                     "2026-11-26T10:00:00+00:00"),
])
def test_code_is_bound_to_run_role_and_person(code: str, kwargs: dict,
                                              expected: str | None) -> None:
    assert problem(code, **kwargs) == expected


def test_digest_does_not_contain_the_code() -> None:
    assert all(CODES[p].replace("-", "") not in d for p, d in DIGESTS.items())


def test_a_digest_cannot_be_checked_without_the_key() -> None:
    """With the log's digest and salt but not the key, a right guess does not match."""
    unkeyed = code_digest(CODES["erin"], key=b"", run_id="run-1", role="engineering_lead",
                          person_id="erin", salt="s")
    other_key = code_digest(CODES["erin"], key=b"x" * 32, run_id="run-1",
                            role="engineering_lead", person_id="erin", salt="s")
    assert DIGESTS["erin"] not in (unkeyed, other_key)
