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


# Emergencies (policy section 5): a trigger and the incident or CVE behind it; scope, risk
# assessment and testing plan may wait for the documentation, unless `complete`.

TRIGGERS = "p1_incident, exploited_critical_vulnerability"
NO_TRIGGER = f"say why this cannot wait: one of {TRIGGERS} (policy section 5)"
P1_HINT = "name the P1 incident this resolves, e.g. INC-4711"
CVE_HINT = "name the CVE being exploited, e.g. CVE-2026-12345"
DEFERRED_MISSING = [
    "scope: missing; add which systems and environments the change touches",
    "risk_assessment: missing; add what could go wrong, how likely, and the impact",
    "testing_plan: missing; add how the change is tested before and after production",
]


def example_fields(key: str, **overrides: Any) -> dict[str, Any]:
    """examples/tickets/<key>.yaml as ticket fields, with `overrides` (None removes)."""
    fields: dict[str, Any] = yaml.safe_load(
        (PROJECT_ROOT / f"examples/tickets/{key}.yaml").read_text())
    fields.pop("status")
    for name, value in overrides.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def check_example(config: Config, key: str, complete: bool = False,
                  **overrides: Any) -> ChangeRequest | list[str]:
    ticket = Ticket(key=key, status="open", fields=example_fields(key, **overrides))
    return validate_ticket(ticket, config.policy, config.roster, config.services,
                           complete=complete)


@pytest.mark.parametrize(("key", "trigger", "ref"), [
    pytest.param("CHG-201", "p1_incident", "INC-4711", id="CHG-201-p1-incident"),
    pytest.param("CHG-202", "exploited_critical_vulnerability", "CVE-2026-31337",
                 id="CHG-202-exploited-cve"),
])
def test_an_emergency_may_defer_its_documentation(config: Config, key: str, trigger: str,
                                                  ref: str) -> None:
    change = check_example(config, key)
    assert isinstance(change, ChangeRequest)
    assert (change.id, change.category.value, change.emergency_trigger, change.incident_ref) \
        == (key, "emergency", trigger, ref)
    assert (change.scope, change.risk_assessment, change.testing_plan) == ("", "", "")


@pytest.mark.parametrize("key", ["CHG-201", "CHG-202"])
def test_complete_asks_an_emergency_for_every_field(config: Config, key: str) -> None:
    assert check_example(config, key, complete=True) == DEFERRED_MISSING


def test_complete_emergency_with_every_field_is_a_change(config: Config) -> None:
    change = check_example(config, "CHG-201", complete=True, scope="sample, production",
                           risk_assessment="low: one timeout value",
                           testing_plan="CI; production smoke checks")
    assert isinstance(change, ChangeRequest)
    assert (change.scope, change.risk_assessment, change.testing_plan) == (
        "sample, production", "low: one timeout value", "CI; production smoke checks")


@pytest.mark.parametrize(("key", "overrides", "expected"), [
    pytest.param("CHG-201", {"emergency_trigger": None},
                 [f"emergency_trigger: missing; {NO_TRIGGER}"], id="trigger-missing"),
    pytest.param("CHG-201", {"emergency_trigger": "outage"},
                 [f"emergency_trigger: 'outage' is not an emergency; {NO_TRIGGER}"],
                 id="trigger-not-in-policy"),
    pytest.param("CHG-201", {"emergency_trigger": ["p1_incident"]},
                 [f"emergency_trigger: ['p1_incident'] is not an emergency; {NO_TRIGGER}"],
                 id="trigger-not-text-reported-once"),
    pytest.param("CHG-201", {"incident_ref": None},
                 [f"incident_ref: missing; {P1_HINT}"], id="p1-ref-missing"),
    pytest.param("CHG-201", {"incident_ref": "INC 4711"},
                 [f"incident_ref: 'INC 4711' is not valid; {P1_HINT}"], id="p1-ref-with-space"),
    pytest.param("CHG-201", {"incident_ref": "4711"},
                 [f"incident_ref: '4711' is not valid; {P1_HINT}"], id="p1-ref-without-project"),
    pytest.param("CHG-201", {"incident_ref": "INC-4711\n"},
                 [f"incident_ref: 'INC-4711\\n' is not valid; {P1_HINT}"],
                 id="p1-ref-trailing-newline"),
    pytest.param("CHG-201", {"incident_ref": 4711},
                 [f"incident_ref: 4711 is not valid; {P1_HINT}"],
                 id="p1-ref-not-text-reported-once"),
    pytest.param("CHG-201", {"incident_ref": "CVE-2026-31337"},
                 [f"incident_ref: 'CVE-2026-31337' is not valid; {P1_HINT}"],
                 id="p1-ref-is-a-cve"),
    pytest.param("CHG-202", {"incident_ref": None},
                 [f"incident_ref: missing; {CVE_HINT}"], id="cve-ref-missing"),
    pytest.param("CHG-202", {"incident_ref": "INC-4711"},
                 [f"incident_ref: 'INC-4711' is not valid; {CVE_HINT}"], id="cve-ref-is-an-inc"),
    pytest.param("CHG-202", {"incident_ref": "CVE-2026-123"},
                 [f"incident_ref: 'CVE-2026-123' is not valid; {CVE_HINT}"],
                 id="cve-ref-too-short"),
    pytest.param("CHG-202", {"incident_ref": "cve-2026-31337"},
                 [f"incident_ref: 'cve-2026-31337' is not valid; {CVE_HINT}"],
                 id="cve-ref-lowercase"),
    pytest.param("CHG-202", {"incident_ref": "CVE-26-31337"},
                 [f"incident_ref: 'CVE-26-31337' is not valid; {CVE_HINT}"],
                 id="cve-ref-two-digit-year"),
    pytest.param("CHG-202", {"emergency_trigger": "outage"},
                 [f"emergency_trigger: 'outage' is not an emergency; {NO_TRIGGER}",
                  f"incident_ref: 'CVE-2026-31337' is not valid; {P1_HINT}"],
                 id="unknown-trigger-expects-an-incident"),
    pytest.param("CHG-201", {"emergency_trigger": None, "incident_ref": None,
                             "summary": None, "rollback_plan": None},
                 ["summary: missing; add a one-line title of the change",
                  f"emergency_trigger: missing; {NO_TRIGGER}",
                  f"incident_ref: missing; {P1_HINT}",
                  "rollback_plan: missing; add trigger, steps, owner, verification and "
                  "time_estimate_minutes (policy section 4)"],
                 id="several-in-order"),
    pytest.param("CHG-201", {"description": "  "},
                 ["description: missing; add what changes and why"],
                 id="description-is-not-deferrable"),
    pytest.param("CHG-201", {"scope": 5},
                 ["scope: missing; add which systems and environments the change touches"],
                 id="deferrable-but-not-text"),
    pytest.param("CHG-201", {"category": "normal"}, DEFERRED_MISSING,
                 id="normal-may-not-defer"),
    pytest.param("CHG-201", {"category": "normal", "scope": "sample, production"},
                 DEFERRED_MISSING[1:], id="normal-missing-risk-and-testing"),
    pytest.param("CHG-202", {"category": "major", "emergency_trigger": None,
                             "incident_ref": None}, DEFERRED_MISSING,
                 id="major-may-not-defer"),
])
def test_emergency_problems_are_named(config: Config, key: str, overrides: dict[str, Any],
                                      expected: list[str]) -> None:
    assert check_example(config, key, **overrides) == expected


@pytest.mark.parametrize("blank", [
    pytest.param(None, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("  \n", id="whitespace"),
])
def test_deferrable_fields_may_be_blank_only_for_an_emergency(config: Config,
                                                              blank: str | None) -> None:
    deferred: dict[str, Any] = {"scope": blank, "risk_assessment": blank, "testing_plan": blank}
    change = check_example(config, "CHG-201", **deferred)
    assert isinstance(change, ChangeRequest)
    assert (change.scope, change.risk_assessment, change.testing_plan) == ("", "", "")
    assert check_example(config, "CHG-201", complete=True, **deferred) == DEFERRED_MISSING


def test_a_normal_ticket_missing_scope_is_refused(config: Config) -> None:
    assert check(config, scope=None) == [
        "scope: missing; add which systems and environments the change touches"]
    assert check(config, scope="   ") == [
        "scope: missing; add which systems and environments the change touches"]


def test_deferrable_fields_follow_the_policy(config: Config) -> None:
    rules = config.policy.emergency.model_copy(update={"deferrable_fields": ["testing_plan"]})
    stricter = config.policy.model_copy(update={"emergency": rules})
    ticket = Ticket(key="CHG-201", status="open", fields=example_fields("CHG-201"))
    assert validate_ticket(ticket, stricter, config.roster, config.services) \
        == DEFERRED_MISSING[:2]
