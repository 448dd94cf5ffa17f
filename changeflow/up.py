"""`changeflow up` (`make serve`): a Prefect server and every deployment, on one machine.

It starts `prefect server start` with its state in `<var>/prefect` (so runs, schedules
and artifacts survive a restart), creates what the flows need on it (a concurrency
limit of 1 per service for its deployments, a Secret block for the Jira token when the
environment has one), prints the UI's address, and serves every deployment of
`prefect.yaml` from this process. Ctrl-C stops the serving and the server, with
nothing left running; the deployments' schedules stay on for the next start.
"""

from __future__ import annotations

from pathlib import Path

from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectNotFound

from changeflow.prefect_server import local_prefect_server
from config.settings import Settings
from integrations.factory import build

JIRA_TOKEN_BLOCK = "changeflow-jira-token"
"""The Secret block `up` saves `CHANGEFLOW_JIRA_TOKEN` into, for served runs to load."""


def prepare_server(settings: Settings) -> list[str]:
    """Create the concurrency limits and secret blocks the flows use; returns what it did."""
    adapters = build(settings)
    done = []
    try:
        services = sorted(adapters.config.services.services)
    finally:
        adapters.close()
    with get_client(sync_client=True) as client:
        for service in services:
            name = f"deploy-{service}"
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1))
                done.append(f"concurrency limit {name} (1 deployment at a time)")
    if settings.jira_token is not None:
        Secret(value=settings.jira_token.get_secret_value()).save(JIRA_TOKEN_BLOCK,
                                                                  overwrite=True)
        done.append(f"Secret block {JIRA_TOKEN_BLOCK} (from CHANGEFLOW_JIRA_TOKEN)")
    return done


def run_up(port: int = 4200, limit: int = 4, home: Path | None = None) -> int:
    """Run the server and serve every deployment until Ctrl-C; returns the exit status."""
    from flows.serve import serve_all

    settings = Settings()
    home = home or settings.var_dir / "prefect"
    with local_prefect_server(home, port=port) as api:
        for line in prepare_server(settings):
            print(f"created {line}")
        print(f"Prefect UI: {api.removesuffix('/api')}   (API {api})")
        print("Ctrl-C stops the deployments and the server; schedules stay on.", flush=True)
        try:
            serve_all(limit=limit, pause_on_shutdown=False)
        except KeyboardInterrupt:
            pass
    print(f"stopped; the server's state is kept in {home}")
    return 0
