"""Load: many changes through their lifecycles at once, on one server and one change log.

`run_load` starts a Prefect server on PostgreSQL and keeps the change log in another
database of the same PostgreSQL, writes a catalog of `services` services and one
normal change (a copy of CHG-101) per change, and starts every `change-request` at
once, each in a thread of this process. Commands and checks are instant; the change
log, the tickets, the outbox, the one-time codes and the scripted approver that answers
the four decisions of each change through Prefect's API are the real ones. Each
service's deploy slot is the real global concurrency limit of 1.

It returns the figures (wall time, changes per minute, peak memory of this process and
of the server) and the checks: every change succeeded, the chain verifies, and no two
deployments of one service overlapped.

Run alone with `.venv/bin/python -m bench.load [CHANGES]`.
"""

from __future__ import annotations

import contextvars
import json
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from bench.lifecycle import (
    TEMPLATE,
    _server_pid,
    _tree_kib,
    drain_prefect_workers,
    instant_adapters,
    quiet_console,
)
from changeflow.approver import ScriptedApprover
from changeflow.prefect_server import local_prefect_server
from changeflow.stack import SAMPLE_PORT, write_config
from changeflow.up import prepare_server
from integrations.factory import installed
from integrations.ports import ChangeLog
from tests.support.postgres import PostgresServer, running_postgres

POLL_SECONDS = 5.0
"""How often each paused run asks the server whether it was resumed (the default)."""


def write_catalog(config: Path, services: int) -> list[str]:
    """`services` copies of the sample service in the catalog; returns their names."""
    path = config / "services.yaml"
    catalog = yaml.safe_load(path.read_text())
    sample = catalog["services"]["sample"]
    names = [f"svc-{i:02d}" for i in range(services)]
    catalog["services"] = {name: sample for name in names}
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return names


def write_tickets(folder: Path, services: list[str], changes: int) -> list[str]:
    """One normal change per key, spread over the services; returns the keys."""
    folder.mkdir(parents=True, exist_ok=True)
    template = yaml.safe_load(TEMPLATE.read_text())
    keys = []
    for i in range(changes):
        key = f"LOAD-{i:04d}"
        ticket = {**template, "service": services[i % len(services)], "version": f"1.1.{i}",
                  "summary": f"Load change {i}"}
        (folder / f"{key}.yaml").write_text(yaml.safe_dump(ticket, sort_keys=False))
        keys.append(key)
    return keys


def overlaps(log: ChangeLog, keys: list[str]) -> list[str]:
    """Pairs of changes to one service whose deploy-to-verify spans overlap."""
    spans: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for key in keys:
        events = log.events(key)
        start = next(e.at for e in events if e.type == "deployment_started")
        end = next(e.at for e in events if e.type in ("verification_passed",
                                                      "verification_failed"))
        record = log.record(key)
        assert record is not None
        spans[str(record.service)].append((start, end, key))
    found = []
    for service, runs in spans.items():
        runs.sort()
        found += [f"{service}: {a[2]} and {b[2]}" for a, b in pairwise(runs)
                  if b[0] < a[1]]
    return found


class Sampler:
    """Samples the RSS of a process tree (the server) until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kib = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak_kib = max(self.peak_kib, _tree_kib(self.pid))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_load(changes: int = 200, services: int = 10, postgres: PostgresServer | None = None,
             work_dir: Path | None = None) -> dict[str, Any]:
    """Run `changes` changes at once; returns the figures and the checks."""
    if postgres is None:
        with running_postgres() as server:
            return run_load(changes, services, server, work_dir)
    root = Path(work_dir or tempfile.mkdtemp(prefix="changeflow-load-"))
    write_config(root / "config", SAMPLE_PORT)
    names = write_catalog(root / "config", services)
    keys = write_tickets(root / "tickets", names, changes)
    server_db = postgres.create_database().replace("+psycopg", "+asyncpg")
    with local_prefect_server(root / "prefect", database_url=server_db) as api, \
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), \
            quiet_console():
        adapters = instant_adapters(root, postgres.create_database(), POLL_SECONDS,
                                    timeout_hours=72)
        prepare_server(adapters.settings)
        from flows.change_request import change_request

        def one(key: str) -> str:
            result = change_request(key)  # a stop raises: only a result is returned
            assert isinstance(result, dict)
            return str(result["outcome"])

        with installed(adapters), Sampler(_server_pid(api)) as sampled, \
                ScriptedApprover(adapters.settings.resolved_outbox_path).start(interval=1.0):
            # Each thread runs in a copy of this context: the server's URL is set in it.
            contexts = [contextvars.copy_context() for _ in keys]
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=changes) as pool:
                outcomes = list(pool.map(lambda c, k: c.run(one, k), contexts, keys))
            seconds = time.monotonic() - started
        drain_prefect_workers()  # the runs' logs and events reach the server before it stops
        log = adapters.change_log
        verified = log.verify()
        figures = {
            "changes": changes, "services": services, "seconds": round(seconds, 1),
            "changes_per_minute": round(changes / seconds * 60, 1),
            "succeeded": outcomes.count("succeeded"), "events": log.count(),
            "chain_ok": verified.ok, "overlaps": overlaps(log, keys),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "server_peak_rss_mib": round(sampled.peak_kib / 1024),
        }
        adapters.close()
    return figures


if __name__ == "__main__":
    print(json.dumps(run_load(int(sys.argv[1]) if len(sys.argv) > 1 else 200), indent=2))
