"""`changeflow up` (`make serve`): a Prefect server and every deployment, on one machine.

It starts `prefect server start` with its state in `<var>/prefect` (so runs, schedules
and artifacts survive a restart), creates what the flows need on it (a concurrency
limit of 1 per service for its deployments, a Secret block for the Jira token when the
environment has one), prints the UI's address, and serves every deployment of
`prefect.yaml` from this process. Ctrl-C stops the serving and the server, with
nothing left running; the deployments' schedules stay on for the next start.

The API is never open: the server requires basic authentication
(`PREFECT_SERVER_API_AUTH_STRING`) with a `user:password` taken from the environment or,
on the first start, made at random and kept in `<var>/prefect-auth` (mode 0600). The
served runs send it; the UI asks for it once per browser. Without it, anyone who reaches
the port could read Secret blocks, resume a waiting run or override a run's command.
"""

from __future__ import annotations

import os
import secrets
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


AUTH_USER = "changeflow"
AUTH_FILE = "prefect-auth"
"""Under the var directory: the API's `user:password`, readable by its owner only."""


class AuthFileError(ValueError):
    """The kept API password cannot be used; the message says why and how to fix it."""


def api_auth_string(path: Path) -> str:
    """The API's `user:password`: `PREFECT_SERVER_API_AUTH_STRING` if set, else kept in `path`.

    On the first start a random one is written to `path`, created with mode 0600.

    Raises:
        AuthFileError: `path` may be read by others than its owner, or does not hold
            `user:password`.
    """
    given = os.environ.get("PREFECT_SERVER_API_AUTH_STRING", "").strip()
    if given:
        return given
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"{AUTH_USER}:{secrets.token_urlsafe(24)}\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AuthFileError(f"{path} holds the Prefect API's password but has mode {mode:o}; "
                            f"make it readable by its owner only: chmod 600 {path}")
    text = path.read_text(encoding="utf-8").strip()
    user, sep, password = text.partition(":")
    if not (sep and user and password) or any(c.isspace() for c in text):
        raise AuthFileError(f"{path} must hold one line user:password (no spaces); delete it "
                            "and a new one is made on the next start")
    return text


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
    auth_file = settings.var_dir / AUTH_FILE
    auth = api_auth_string(auth_file)
    with local_prefect_server(home, port=port, auth_string=auth) as api:
        for line in prepare_server(settings):
            print(f"created {line}")
        print(f"Prefect UI: {api.removesuffix('/api')}   (API {api})")
        kept = ("PREFECT_SERVER_API_AUTH_STRING" if os.environ.get(
            "PREFECT_SERVER_API_AUTH_STRING", "").strip() else str(auth_file))
        print(f"The API requires its password: sign in to the UI with the user:password in "
              f"{kept}; clients (prefect, changeflow) set PREFECT_API_AUTH_STRING to it.")
        print("Ctrl-C stops the deployments and the server; schedules stay on.", flush=True)
        try:
            serve_all(limit=limit, pause_on_shutdown=False)
        except KeyboardInterrupt:
            pass
    print(f"stopped; the server's state is kept in {home}")
    return 0
