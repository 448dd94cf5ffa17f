"""Every prefect.yaml deployment points at a real flow with valid parameters."""

from __future__ import annotations

import importlib
import inspect

import pytest
import yaml
from prefect import Flow

from config.settings import PROJECT_ROOT

DEPLOYMENTS = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_is_a_flow_with_valid_parameters(deployment: dict) -> None:
    path, name = deployment["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow)
    assert flow.name == deployment["name"]
    inspect.signature(flow.fn).bind(**deployment.get("parameters", {}))
    flow.validate_parameters(deployment.get("parameters", {}))
    assert deployment["description"].strip() and deployment["tags"]
