"""The composition root picks the embedded adapters when nothing is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT, Settings
from integrations.commands import SubprocessRunner
from integrations.factory import build, change_log_url
from integrations.http_checks import HttpChecks
from integrations.local_tickets import LocalChangeTickets
from integrations.outbox import OutboxNotifier


def test_no_settings_means_embedded_adapters(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGEFLOW_VAR_DIR", str(tmp_path / "var"))
    adapters = build()
    try:
        assert isinstance(adapters.tickets, LocalChangeTickets)
        assert isinstance(adapters.runner, SubprocessRunner)
        assert isinstance(adapters.checks, HttpChecks)
        assert isinstance(adapters.notifier, OutboxNotifier)
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
