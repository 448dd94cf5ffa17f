"""Intake: a ticket becomes a ChangeRequest, or the full list of what to fix."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import Config
from config.settings import PROJECT_ROOT
from domain.intake import validate_ticket
from domain.models import ChangeRequest, Ticket


def ticket_fields(**overrides: Any) -> dict[str, Any]:
    fields = yaml.safe_load((PROJECT_ROOT / "examples/tickets/CHG-101.yaml").read_text())
    for name in ("status", "watchers"):
        fields.pop(name)
    for key, value in overrides.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def check(config: Config, **overrides: Any) -> ChangeRequest | list[str]:
    ticket = Ticket(key="CHG-101", status="open", fields=ticket_fields(**overrides))
    return validate_ticket(ticket, config.policy, config.roster, config.services)


def test_a_complete_ticket_becomes_a_change(config: Config) -> None:
    change = check(config)
    assert isinstance(change, ChangeRequest)
    assert (change.id, change.category.value, change.service, change.version, change.author) \
        == ("CHG-101", "normal", "sample", "1.1.0", "alice")
    assert change.rollback_plan.time_estimate_minutes == 10


@pytest.mark.parametrize("overrides, expected", [
    ({"rollback_plan": None},
     ["rollback_plan: missing; add trigger, steps, owner, verification and "
      "time_estimate_minutes (policy section 4)"]),
    ({"rollback_plan": {"trigger": "errors", "steps": "redeploy", "owner": "alice"}},
     ["rollback_plan: missing verification, time_estimate_minutes (policy section 4)"]),
    ({"rollback_plan": {"trigger": "e", "steps": "s", "owner": "deploybot",
                        "verification": "v", "time_estimate_minutes": 5}},
     ["rollback_plan: missing owner ('deploybot' is a shared account) (policy section 4)"]),
    ({"risk_assessment": "   "},
     ["risk_assessment: missing; add what could go wrong, how likely, and the impact"]),
    ({"service": "payments"},
     ["service: 'payments' is not in the service catalog (known: sample)"]),
    ({"version": "1.0; rm -rf /"},
     ["version: '1.0; rm -rf /' is not a plain version string (letters, digits and . _ + -)"]),
    ({"author": "zed"}, ["author: 'zed' is not in the roster; use a roster id"]),
    ({"category": "urgent"},
     ["category: Input should be 'standard', 'normal', 'major' or 'emergency'"]),
    ({"rollback_plan": "redeploy the old one"},
     ["rollback_plan: Input should be a valid dictionary or instance of RollbackPlan"]),
    ({"version": 2.0, "service": ["sample"]},
     ['service: must be text, not list',
      'version: must be text, not float (quote it: version: "2.0")']),
    ({"severity": "high"}, ["severity: unknown field (check its spelling)"]),
    ({"description": None, "testing_plan": None, "version": None},
     ["description: missing; add what changes and why",
      "testing_plan: missing; add how the change is tested before and after production",
      "version: missing"]),
])
def test_every_problem_is_named_with_how_to_fix_it(config: Config, overrides: dict[str, Any],
                                                   expected: list[str]) -> None:
    assert check(config, **overrides) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=10)
FIELD_NAMES = ["summary", "description", "scope", "risk_assessment", "testing_plan",
               "rollback_plan", "category", "service", "version", "author", "labels",
               "components", "changed_paths", "evidence", "incident_ref", "extra"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=len(FIELD_NAMES)),
       st.booleans())
def test_any_ticket_gives_a_change_or_named_problems(config: Config, garbage: dict[str, Any],
                                                     start_complete: bool) -> None:
    fields = {**(ticket_fields() if start_complete else {}), **garbage}
    result = validate_ticket(Ticket(key="CHG-1", status="open", fields=fields),
                             config.policy, config.roster, config.services)
    if isinstance(result, list):
        assert result, "a refusal must say why"
        assert all(isinstance(p, str) and ": " in p for p in result)
    else:
        assert result.service in config.services.services
        assert config.roster.get(result.author) is not None
