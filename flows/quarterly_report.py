"""`quarterly-report`: what the CISO and the auditor read each quarter.

Scheduled at 06:00 on the first day of each quarter (in the policy's time zone) for the
quarter before; runnable for any quarter. It writes the HTML report, a CSV per table,
the XLSX workbook and the evidence pack, and leaves a summary, the main tables and a
link to the files as Prefect artifacts. `changeflow report` does the same without Prefect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from integrations.factory import open_adapters
from reporting.model import Quarter
from tasks.reporting import produce_report, publish_report


@flow(name="quarterly-report", log_prints=True)
def quarterly_report(quarter: str | None = None, out_dir: str | None = None) -> dict[str, Any]:
    """Write the report of `quarter` (like 2026Q3; default: the quarter before this one).

    Args:
        quarter: the quarter to report on, e.g. 2026Q3; empty: the quarter before this one.
        out_dir: where the files go; default `<var>/reports/<quarter>`.
    """
    with open_adapters() as a:
        zone = a.config.policy.schedule.zone
        which = Quarter.parse(quarter) if quarter else Quarter.containing(
            datetime.now(UTC), zone).previous()
        folder = Path(out_dir) if out_dir else a.settings.var_dir / "reports" / str(which)
        report, written = task(name="write-report", cache_policy=NO_CACHE)(produce_report)(
            a, which, folder)
        publish_report(report, written)
        print(f"report {which}: {len(report.changes)} changes, written to {folder}")
        return {"quarter": str(which), "changes": len(report.changes),
                "chain_ok": report.chain["ok"], "files": {k: str(v) for k, v in written.items()}}
