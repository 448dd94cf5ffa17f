"""Unit-test fixtures: the real configuration, loaded once, and builders of changes.

The builders are plain functions exposed as fixtures, so that parametrized tables can
hold small overrides and each test builds the full object it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from config.loader import Config, load_config
from domain.models import (
    Approval,
    Category,
    ChangeRequest,
    CiEvidence,
    CodeReviewEvidence,
    Decision,
    Evidence,
    Person,
    RollbackPlan,
    Roster,
    SastEvidence,
)
from domain.policy import Policy, SchedulePolicy

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
BERLIN = ZoneInfo("Europe/Berlin")


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Wall-clock time in Berlin, the policy's time zone."""
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    """An instant in UTC."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def full_plan(**overrides: Any) -> RollbackPlan:
    """A complete rollback plan owned by alice, with `overrides` applied."""
    values: dict[str, Any] = {
        "trigger": "error rate above 1% for 5 minutes",
        "steps": "redeploy the previous version from the catalog",
        "owner": "alice",
        "verification": "smoke checks pass and error rate back under 0.1%",
        "time_estimate_minutes": 10,
    }
    values.update(overrides)
    return RollbackPlan(**values)


def good_evidence(**overrides: Any) -> Evidence:
    """Evidence on which every gate passes, with `overrides` applied."""
    values: dict[str, Any] = {
        "code_review": CodeReviewEvidence(reviewers=["bob", "erin"]),
        "ci": CiEvidence(status="passed", failed_tests=0),
        "sast": SastEvidence(critical=0, high=0),
        "staging_passed": True,
    }
    values.update(overrides)
    return Evidence(**values)


def make_change(**overrides: Any) -> ChangeRequest:
    """A valid normal change by alice touching nothing sensitive, with `overrides`."""
    values: dict[str, Any] = {
        "id": "CHG-1",
        "summary": "Add a greeting endpoint",
        "description": "Adds GET /hello",
        "scope": "sample service",
        "risk_assessment": "low",
        "testing_plan": "unit tests and staging smoke test",
        "rollback_plan": full_plan(),
        "category": Category.NORMAL,
        "service": "sample",
        "version": "1.2.3",
        "author": "alice",
        "changed_paths": ["src/sample/hello.py"],
        "evidence": good_evidence(),
    }
    values.update(overrides)
    return ChangeRequest(**values)


def approval(role: str, person_id: str, decision: Decision = Decision.APPROVE,
             minutes: int = 0, **extra: Any) -> Approval:
    """An approval given `minutes` after a fixed instant."""
    return Approval(role=role, person_id=person_id, decision=decision,
                    at=datetime(2026, 3, 10, 9, minutes, tzinfo=UTC), **extra)


def with_people(roster: Roster, *people: Person) -> Roster:
    """The roster with `people` added (or replaced by id)."""
    return Roster(people={**roster.people, **{p.id: p for p in people}})


@pytest.fixture(scope="session")
def config() -> Config:
    """The real configuration from config/, loaded once."""
    return load_config(CONFIG_DIR)


@pytest.fixture(scope="session")
def policy(config: Config) -> Policy:
    return config.policy


@pytest.fixture(scope="session")
def roster(config: Config) -> Roster:
    return config.roster


@pytest.fixture(scope="session")
def schedule(policy: Policy) -> SchedulePolicy:
    return policy.schedule


@pytest.fixture
def change() -> Callable[..., ChangeRequest]:
    """`make_change` as a fixture."""
    return make_change


@pytest.fixture
def approve() -> Callable[..., Approval]:
    """`approval` as a fixture."""
    return approval
