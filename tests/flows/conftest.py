"""Flow tests: one Prefect test server for the session, heartbeats off, and a local stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.testing.utilities import prefect_test_harness
from pydantic import SecretStr

from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack, embedded_stack
from tests.fakes.github_server import FakeGitHub

BROKEN = "2.1.0"
REPO = "example/sample"
"""The sample service's repository on the local GitHub (services.yaml says so)."""
CHECK = "ci/tests"
"""The check branch protection requires on its main branch."""


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=90), \
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Config, tickets, change log and sample service in tmp_path (2.1.0 broken in prod)."""
    with embedded_stack(tmp_path, port=0, broken=(f"{BROKEN}@production",),
                        approval_poll_seconds=0.2) as running:
        yield running


@pytest.fixture
def approver(stack: Stack) -> Iterator[ScriptedApprover]:
    """Approves every waiting decision with the first eligible person's code."""
    with ScriptedApprover(stack.outbox).start(interval=0.2) as scripted:
        yield scripted


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """A local GitHub with the sample's repository, main protected by `CHECK`."""
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        fake.protect(REPO, "main", [CHECK])
        yield fake


@pytest.fixture
def github_stack(github: FakeGitHub, tmp_path: Path) -> Iterator[Stack]:
    """The embedded stack with its gates and audit reading the local GitHub."""
    token = SecretStr(github.add_token("changeflow"))
    with embedded_stack(tmp_path, port=0, approval_poll_seconds=0.2, code_host="github",
                        github_url=github.url, github_token=token) as running:
        yield running
