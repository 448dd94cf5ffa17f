"""Serve every deployment of `prefect.yaml` from one process, without a work pool.

This is what `changeflow serve` runs beside `prefect server start`: an engineer opens the
UI, picks `change-request`, and clicks Run. Runs that wait for a person are suspended
and hold no process; the server reschedules them here when resumed.
"""

from __future__ import annotations

import importlib
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment

from config.settings import PROJECT_ROOT, Settings


def load_flow(entrypoint: str) -> Flow[Any, Any]:
    """The flow object an entrypoint (`flows/x.py:fn`) names."""
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    found = getattr(module, name)
    if not isinstance(found, Flow):
        raise TypeError(f"{entrypoint} is not a Prefect flow")
    return found


def deployments() -> list[RunnerDeployment]:
    """`prefect.yaml`'s deployments, ready to serve."""
    spec = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    built = []
    for entry in spec["deployments"]:
        schedules = [CronSchedule(cron=s["cron"], timezone=s.get("timezone", "UTC"))
                     for s in entry.get("schedules", []) if "cron" in s]
        deployment = load_flow(entry["entrypoint"]).to_deployment(
            name=entry["name"], description=" ".join(entry["description"].split()),
            tags=entry.get("tags", []), parameters=entry.get("parameters", {}),
            enforce_parameter_schema=entry.get("enforce_parameter_schema", True),
            concurrency_limit=entry.get("concurrency_limit"), schedules=schedules or None)
        assert isinstance(deployment, RunnerDeployment)  # sync context: never a coroutine
        built.append(deployment)
    return built


JIRA_ONLY = frozenset({"jira-sync"})
"""Deployments with nothing to do unless the tickets are in Jira."""


def serve_all(limit: int | None = None, pause_on_shutdown: bool = True) -> None:
    """Serve until interrupted; without Jira, the Jira-only deployments are left out.

    Args:
        limit: flow-run processes at once.
        pause_on_shutdown: pause the deployments' schedules when serving stops.
    """
    served = deployments()
    if Settings().tickets != "jira":
        served = [d for d in served if d.name not in JIRA_ONLY]
        print(f"not serving {', '.join(sorted(JIRA_ONLY))}: CHANGEFLOW_TICKETS is not jira")
    serve(*served, limit=limit, pause_on_shutdown=pause_on_shutdown)
