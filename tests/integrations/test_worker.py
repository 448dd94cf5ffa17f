"""The worker setup: a Prefect server on PostgreSQL, a process work pool and a worker.

PostgreSQL, `prefect server start` and `prefect worker start` run as processes of their
own. `prefect deploy --all` registers `prefect.yaml` with the `changeflow` process pool,
`changeflow prepare-server` creates the per-service concurrency limits,
and `change-request` is started for CHG-101 (a normal change). Each wait for a person
suspends the run, its process exits, and the worker runs it again when the approval
resumes it. The test proves the change completes through the worker, that the Prefect
server keeps its state in PostgreSQL, and that the change log, in the same PostgreSQL,
holds the approvals, the deployment, the verification and the close on a chain that
verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments import run_deployment

from changeflow.approver import ScriptedApprover
from changeflow.prefect_server import local_prefect_server, stop_process_group
from changeflow.stack import Stack, embedded_stack
from config.settings import PROJECT_ROOT
from tests.support.postgres import PostgresServer

PREFECT = str(Path(sys.executable).with_name("prefect"))
CHANGEFLOW = str(Path(sys.executable).with_name("changeflow"))
POOL = "changeflow"
NO_SCHEDULER = {"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
"""The scheduled deployments (jira-sync every 5 minutes, ...) must not compete for the
worker while the change runs."""


@dataclass
class Worker:
    """`prefect worker start` for the pool, and where it logs."""

    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def psycopg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql+asyncpg://")


def processes_with(marker: str) -> list[int]:
    """Processes whose command line or environment mentions `marker` (this test's)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in seen and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


def cli_env(stack: Stack, api: str, home: Path) -> dict[str, str]:
    """The environment of the Prefect CLI and worker: the server, and changeflow's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGEFLOW_", "PREFECT_"))}
    settings = stack.settings
    env.update(PREFECT_API_URL=api, PREFECT_HOME=str(home),
               PREFECT_WORKER_QUERY_SECONDS="1",  # default 10: a resumed run starts sooner
               CHANGEFLOW_CONFIG_DIR=str(settings.config_dir),
               CHANGEFLOW_VAR_DIR=str(settings.var_dir),
               CHANGEFLOW_TICKETS_DIR=str(settings.resolved_tickets_dir),
               CHANGEFLOW_DATABASE_URL=settings.resolved_database_url,
               CHANGEFLOW_CHAIN_KEY_FILE=str(settings.chain_key_file))
    return env


def prefect_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([PREFECT, *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


@contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[Worker]:
    """`prefect worker start --pool changeflow`; stopped with its flow-run processes."""
    with open(log, "wb") as out:
        process = subprocess.Popen([PREFECT, "worker", "start", "--pool", POOL],
                                   cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Worker(process, log)
    finally:
        stop_process_group(process)
        for pid in processes_with(env["CHANGEFLOW_VAR_DIR"]):  # flow runs: own sessions
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def prefect_database(postgres: PostgresServer) -> str:
    """The Prefect server's own database (a psycopg URL)."""
    return postgres.create_database()


@pytest.fixture
def stack(postgres: PostgresServer, tmp_path: Path) -> Iterator[Stack]:
    """Config, tickets and the sample service in tmp_path; the change log on PostgreSQL."""
    with embedded_stack(tmp_path / "stack", port=0,
                        database_url=postgres.create_database()) as running:
        yield running


@pytest.fixture
def api(prefect_database: str, tmp_path: Path) -> Iterator[str]:
    """`prefect server start` on PostgreSQL, set as the current API."""
    with local_prefect_server(tmp_path / "server", database_url=asyncpg_url(prefect_database),
                              env=NO_SCHEDULER) as url:
        yield url


@pytest.fixture
def worker(stack: Stack, api: str, tmp_path: Path) -> Iterator[Worker]:
    """The pool, every deployment, the concurrency limits, and a worker polling the pool."""
    env = cli_env(stack, api, tmp_path / "prefect-home")
    prefect_cli(env, "work-pool", "create", POOL, "--type", "process")
    prefect_cli(env, "deploy", "--all", "--no-prompt")
    done = subprocess.run([CHANGEFLOW, "prepare-server"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "created concurrency limit deploy-sample" in done.stdout, done
    with running_worker(env, tmp_path / "worker.log") as running:
        yield running


def start_change(ticket_key: str) -> FlowRun:
    """Start `change-request` on the deployment, as Run in the UI does; do not wait."""
    run = run_deployment("change-request/change-request",
                         parameters={"ticket_key": ticket_key}, timeout=0)
    assert isinstance(run, FlowRun)  # sync context: never a coroutine
    return run


def wait_until_final(run_id: UUID, worker: Worker, timeout: float = 240) -> State:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                return state
            assert worker.process.poll() is None, f"the worker exited:\n{worker.tail()}"
            assert time.monotonic() < deadline, (
                f"run still {state.name if state else None} after {timeout} s; "
                f"worker log:\n{worker.tail()}")
            time.sleep(0.5)


def server_row(prefect_database: str, run_id: UUID) -> tuple[str, str, int]:
    """The run as the Prefect server stored it: state, work pool, times suspended."""
    with psycopg.connect(psycopg_dsn(prefect_database)) as conn:
        row = conn.execute(
            "SELECT r.state_type, p.name, (SELECT count(*) FROM flow_run_state s"
            "  WHERE s.flow_run_id = r.id AND s.name = 'Suspended')"
            " FROM flow_run r JOIN work_queue q ON q.id = r.work_queue_id"
            " JOIN work_pool p ON p.id = q.work_pool_id WHERE r.id = %s", (run_id,)).fetchone()
    assert row is not None, f"flow run {run_id} is not in the Prefect database"
    return str(row[0]), str(row[1]), int(row[2])


@pytest.mark.postgres
@pytest.mark.slow
def test_a_change_runs_through_a_worker_with_server_and_change_log_on_postgresql(
        stack: Stack, worker: Worker, prefect_database: str) -> None:
    with ScriptedApprover(stack.outbox).start(interval=0.3):
        run = start_change("CHG-101")
        final = wait_until_final(run.id, worker)
    assert final.is_completed(), f"{final}\nworker log:\n{worker.tail()}"
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run.id).work_pool_name == POOL

    state, pool, suspended = server_row(prefect_database, run.id)
    assert (state, pool) == ("COMPLETED", POOL)
    assert suspended == 4  # lead review, QA sign-off, engineer and reviewer availability

    log = stack.adapters.change_log
    assert log.dialect == "postgresql"
    events = log.events("CHG-101")
    approved = {e.payload["role"] for e in events if e.type == "approval_recorded"}
    assert {"engineering_lead", "qa"} <= approved
    types = [e.type for e in events]
    for expected in ("approval_granted", "deployment_succeeded", "verification_passed",
                     "change_closed"):
        assert types.count(expected) == 1, (expected, types)
    record = log.record("CHG-101")
    assert record is not None and record.outcome == "succeeded"
    verified = log.verify()
    assert verified.ok and verified.checked == log.count(), verified
