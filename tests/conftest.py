"""Fixtures shared by every tier of the suite."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer, running_postgres

_CLEARED_PREFIXES = ("CHANGEFLOW_", "JIRA_", "PREFECT_API_")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's environment must not change a result."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session."""
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh change-log database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'changelog.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()
