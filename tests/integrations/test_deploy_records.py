"""A deploy command's record read as deploys (`integrations.deploy_records`): bad lines named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.practices import DeployEntry
from integrations.deploy_records import JsonLinesDeployRecords
from integrations.ports import DeployRecordMalformed

GOOD = ('{"environment": "production", "version": "1.0.1", '
        '"deployed_at": "2026-11-26T09:00:00+00:00"}')


def test_each_line_is_a_deploy_and_no_file_is_none(tmp_path: Path) -> None:
    path = tmp_path / "deploys.jsonl"
    assert JsonLinesDeployRecords().entries(str(path)) is None
    path.write_text(GOOD + "\n", encoding="utf-8")
    assert JsonLinesDeployRecords().entries(str(path)) == [
        DeployEntry("production", "1.0.1", datetime(2026, 11, 26, 9, tzinfo=UTC))]


@pytest.mark.parametrize("bad", [
    "SECRET-TOKEN not json",
    '{"environment": "production", "version": "1.0.1"}',
    '{"environment": "production", "version": "1.0.1", "deployed_at": "yesterday"}',
    '{"environment": "production", "version": "1.0.1", "deployed_at": "2026-11-26T09:00:00"}',
    '["SECRET-TOKEN"]',
])
def test_a_line_that_is_not_a_deploy_is_named_by_file_and_number_never_shown(
        tmp_path: Path, bad: str) -> None:
    path = tmp_path / "deploys.jsonl"
    path.write_text(f"{GOOD}\n{bad}\n", encoding="utf-8")
    with pytest.raises(DeployRecordMalformed) as raised:
        JsonLinesDeployRecords().entries(str(path))
    message = str(raised.value)
    assert f"{path}: line 2: not a deploy record" in message
    assert "SECRET-TOKEN" not in message
