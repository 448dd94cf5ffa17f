"""The quarterly-report flow on changes that really ran: files and Prefect artifacts."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack
from flows.change_request import change_request
from flows.quarterly_report import quarterly_report
from reporting.model import Quarter


def test_the_report_of_a_quarter_with_a_rollback_and_its_artifacts(
        stack: Stack, approver: ScriptedApprover, tmp_path: Path) -> None:
    change_request("CHG-101")
    change_request("CHG-103")  # rolled back
    quarter = Quarter.containing(datetime.now(UTC), stack.adapters.config.policy.schedule.zone)
    result = quarterly_report(str(quarter), str(tmp_path / "report"))
    assert (result["quarter"], result["changes"], result["chain_ok"]) == (str(quarter), 2, True)
    files = {name: Path(path) for name, path in result["files"].items()}
    assert {"report.html", "report.xlsx", "chain.json", "controls.csv", "rollbacks.csv",
            "evidence"} <= set(files)
    html = files["report.html"].read_text()
    assert "CHG-103" in html and "INC-CHG-103-1" in html
    with zipfile.ZipFile(files["evidence"]) as pack:
        assert {"changes/CHG-101.json", "changes/CHG-103.json", "report.html",
                "chain.json"} <= set(pack.namelist())
    key = f"quarterly-report-{str(quarter).lower()}"
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(like_=key)))
    kinds = {(a.key, a.type) for a in found}
    assert {(key, "markdown"), (f"{key}-controls", "table"),
            (f"{key}-rollbacks", "table")} <= kinds
    (link,) = [a for a in found if a.key == f"{key}-files"]  # Prefect keeps links as markdown
    assert files["report.html"].resolve().as_uri() in str(link.data)
