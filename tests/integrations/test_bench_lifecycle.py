"""The lifecycle benchmark's own instruments: if one of them miscounts, a figure is wrong."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
    temporary_settings,
)

from bench.lifecycle import (
    InstantRunner,
    PassingChecks,
    RetryLog,
    TaskRunCounter,
    children_of,
    pause_after,
    processes_mentioning,
    status_kib,
)
from domain.services import HttpCheck


@pytest.mark.parametrize(("tasks", "pauses"), [(15, 4), (15, 0), (4, 4), (2, 5), (30, 7)])
def test_every_pause_comes_after_some_task_in_order(tasks: int, pauses: int) -> None:
    points = pause_after(tasks, pauses)
    assert len(points) == pauses
    assert points == sorted(points)
    assert all(1 <= p <= tasks for p in points)


def test_the_lifecycles_shape_spreads_pauses_evenly() -> None:
    assert pause_after(15, 4) == [3, 6, 9, 12]


@pytest.fixture
def busy_once() -> Iterator[str]:
    """An HTTP server answering 503 to the first request and 200 with `true` after."""
    answered: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            status = 503 if not answered else 200
            answered.append(status)
            body = json.dumps(True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    thread.join(timeout=10)


def test_the_retry_log_catches_a_real_prefect_client_back_off(busy_once: str) -> None:
    with temporary_settings(updates={PREFECT_API_URL: busy_once}), \
            RetryLog().attached() as retries, get_client(sync_client=True) as client:
        response = client._client.get("/health")
    assert response.status_code == 200
    assert len(retries.waits) == 1
    started, waited = retries.waits[0]
    assert 0 < waited < 10
    assert retries.between(started - 1, started + 1) == [waited]
    assert retries.between(started + 1, started + 2) == []


def test_the_task_run_counter_counts_finished_lines_only() -> None:
    logger = logging.getLogger("prefect.task_runs")
    with temporary_settings(updates={PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}), \
            TaskRunCounter().attached() as counter:
        logger.info("Finished in state Completed()")
        logger.info("Running hook")
        logger.error("Finished in state Failed('boom')")
    with temporary_settings(updates={PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        logger.info("Finished in state Completed()")  # detached
    assert counter.finished == 2


def test_instant_adapters_succeed_without_running_anything(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = InstantRunner().run(["touch", str(marker)], 5)
    assert result.ok and not marker.exists()
    check = PassingChecks().check(HttpCheck(name="health", url="http://127.0.0.1:9/health"))
    assert check.passed and check.status_code == 200


def test_proc_helpers_see_a_child_its_memory_and_its_environment() -> None:
    marker = f"bench-marker-{os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE, env={**os.environ, "BENCH_MARK": marker})
    try:
        assert child.pid in children_of(os.getpid())
        assert status_kib(child.pid) > 0
        assert processes_mentioning([marker]) == [child.pid]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
    assert child.pid not in children_of(os.getpid())
    assert processes_mentioning([marker]) == []
    assert status_kib(child.pid) == 0
