"""Every prefect.yaml deployment points at a real flow with valid parameters."""

from __future__ import annotations

import inspect

import pytest
import yaml
from prefect.utilities.callables import parameter_schema

from config.settings import PROJECT_ROOT
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


def test_lifecycle_deployments_ask_for_a_ticket_key() -> None:
    served = {d.name: d for d in deployments()}
    assert set(served) == {d["name"] for d in SPEC}
    for entry in SPEC[:4]:
        schema = parameter_schema(load_flow(entry["entrypoint"]).fn)
        assert schema.required == ["ticket_key"], entry["name"]
        assert schema.properties["ticket_key"]["type"] == "string"
