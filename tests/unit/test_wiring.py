"""Every prefect.yaml deployment points at a real flow with valid parameters."""

from __future__ import annotations

import inspect

import pytest
import yaml
from prefect.utilities.callables import parameter_schema

from config.loader import load_config
from config.settings import PROJECT_ROOT
from domain.practices import PRACTICES
from flows.serve import deployments, load_flow

SPEC = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", SPEC, ids=lambda d: d["name"])
def test_entrypoint_is_a_flow_with_valid_parameters(deployment: dict) -> None:
    flow = load_flow(deployment["entrypoint"])
    assert flow.name == deployment["name"]
    parameters = deployment.get("parameters", {})
    inspect.signature(flow.fn).bind_partial(**parameters)
    assert deployment["description"].strip() and deployment["tags"]
    assert deployment["work_pool"]["name"] == "changeflow"


def test_the_deployment_engineers_start_with_comes_first() -> None:
    """The Deployments page lists them in file order: the one to click first is first."""
    assert SPEC[0]["name"] == "change-request"
    assert SPEC[0]["description"].startswith("Start here.")


def test_lifecycle_deployments_ask_for_a_ticket_key() -> None:
    served = {d.name: d for d in deployments()}
    assert set(served) == {d["name"] for d in SPEC}
    for entry in SPEC[:4]:
        schema = parameter_schema(load_flow(entry["entrypoint"]).fn)
        assert schema.required == ["ticket_key"], entry["name"]
        assert schema.properties["ticket_key"]["type"] == "string"
        assert "e.g. CHG-101" in schema.properties["ticket_key"]["description"]


def test_the_emergency_obligation_form_offers_exactly_the_obligations() -> None:
    entry = next(d for d in SPEC if d["name"] == "emergency-obligation")
    schema = parameter_schema(load_flow(entry["entrypoint"]).fn).model_dump_for_openapi()
    assert schema["required"] == ["ticket_key", "obligation"]
    assert schema["properties"]["obligation"]["enum"] == [
        "approval_confirmation", "documentation", "post_hoc_review", "ciso_signoff"]


def test_the_follow_up_runs_hourly_one_at_a_time() -> None:
    entry = next(d for d in SPEC if d["name"] == "emergency-follow-up")
    assert [s["cron"] for s in entry["schedules"]] == ["5 * * * *"]
    assert entry["concurrency_limit"] == 1


def test_the_practices_audit_looks_for_every_practice_the_policy_prohibits() -> None:
    policy = load_config(PROJECT_ROOT / "config").policy
    assert set(PRACTICES) == {p.id for p in policy.prohibited_practices}
