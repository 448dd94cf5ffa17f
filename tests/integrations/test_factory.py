"""The composition root picks the embedded adapters when nothing is configured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.loader import ConfigError
from config.settings import PROJECT_ROOT, Settings
from integrations.commands import SubprocessRunner
from integrations.factory import build, change_log_url
from integrations.http_checks import HttpChecks
from integrations.jira_tickets import JiraChangeTickets
from integrations.local_tickets import LocalChangeTickets
from integrations.outbox import OutboxNotifier
from integrations.ports import TicketSystemError
from tests.fakes.jira_server import FakeJira
from tests.support.jira import jira_project


def test_no_settings_means_embedded_adapters(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGEFLOW_VAR_DIR", str(tmp_path / "var"))
    adapters = build()
    try:
        assert isinstance(adapters.tickets, LocalChangeTickets)
        assert isinstance(adapters.runner, SubprocessRunner)
        assert isinstance(adapters.checks, HttpChecks)
        assert list(adapters.notifiers) == ["outbox"] and adapters.channels == []
        assert isinstance(adapters.notifiers["outbox"], OutboxNotifier)
        assert adapters.change_log.dialect == "sqlite"
        assert (tmp_path / "var" / "changeflow.db").exists()
        assert adapters.change_log.retention_years == 3
        assert adapters.tickets.get("CHG-101").fields["service"] == "sample"
    finally:
        adapters.close()
    assert Settings().config_dir == PROJECT_ROOT / "config"


def test_the_database_password_stays_secret_until_the_url_is_built(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGEFLOW_DATABASE_URL", "postgresql://changeflow@db.internal/cf")
    monkeypatch.setenv("CHANGEFLOW_DATABASE_PASSWORD", "witness-s3cret")
    settings = Settings()
    assert "witness-s3cret" not in repr(settings) and "witness-s3cret" not in str(settings)
    assert change_log_url(settings) == \
        "postgresql+psycopg://changeflow:witness-s3cret@db.internal/cf"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "settings: CHANGEFLOW_JIRA_URL: not set (needed with CHANGEFLOW_TICKETS=jira)"),
    ({"CHANGEFLOW_JIRA_URL": "http://127.0.0.1:9"},
     "settings: CHANGEFLOW_JIRA_TOKEN: not set; set it or CHANGEFLOW_JIRA_TOKEN_BLOCK"),
])
def test_jira_without_its_settings_is_refused_by_name(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      env: dict[str, str], message: str) -> None:
    monkeypatch.setenv("CHANGEFLOW_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CHANGEFLOW_TICKETS", "jira")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        build()


def test_jira_from_settings_with_a_witness_token_that_stays_out_of_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeJira(mode="datacenter") as fake:
        project = jira_project(fake)
        monkeypatch.setenv("CHANGEFLOW_VAR_DIR", str(tmp_path / "var"))
        monkeypatch.setenv("CHANGEFLOW_TICKETS", "jira")
        monkeypatch.setenv("CHANGEFLOW_JIRA_URL", fake.url)
        monkeypatch.setenv("CHANGEFLOW_JIRA_TOKEN", project.service.token)
        adapters = build()
        try:
            assert isinstance(adapters.tickets, JiraChangeTickets)
            assert project.service.token not in repr(adapters.settings)
        finally:
            adapters.close()
        monkeypatch.setenv("CHANGEFLOW_JIRA_TOKEN", "witness-jira-token")
        with pytest.raises(TicketSystemError) as refused:
            build()
        assert "witness-jira-token" not in str(refused.value)
