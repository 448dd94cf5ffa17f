"""`practices-audit`: the daily look for section 6's prohibited practices.

It compares what reached production (the deploy command's own record, and the code
host's deployments) with the change log, checks the approvals the log holds and the
environments' configuration, records each finding once and tells the CISO and
Security about new ones. The run itself is recorded too, so the quarterly report can
tell "no findings" from "no audit". A source that cannot be read fails the run after
everything else was checked and recorded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from domain.practices import PRACTICES
from integrations.factory import open_adapters
from tasks.practices import AuditResult, audit


def summary(result: AuditResult) -> str:
    """The run's markdown artifact: findings (new ones marked), what was checked, problems."""
    lines = ["# Prohibited-practice audit", "",
             f"{len(result.findings)} finding(s), {len(result.new)} new.", ""]
    if result.findings:
        lines += ["| finding | practice | service | change | detail |", "|---|---|---|---|---|"]
        lines += [f"| {f.finding_id}{' (new)' if f.finding_id in result.new else ''} | "
                  f"{f.practice} | {f.service} | {f.change_id or '-'} | "
                  f"{f.detail.replace('|', '/')} |" for f in result.findings]
    lines += ["", "Checked: " + (", ".join(f"{k}: {n}" for k, n in result.checked.items())
                                 or "nothing")]
    if result.problems:
        lines += ["", "**Could not check:**", *[f"- {p}" for p in result.problems]]
    return "\n".join(lines)


@flow(name="practices-audit", log_prints=True)
def practices_audit(lookback_days: int = 3) -> dict[str, Any]:
    """Audit the last `lookback_days` of production deployments; findings are recorded once."""
    with open_adapters() as a:
        result = audit(a, timedelta(days=lookback_days))
    create_markdown_artifact(key="practices-audit", markdown=summary(result),
                             description="Prohibited-practice audit (policy section 6)")
    for finding in result.findings:
        print(f"{finding.finding_id} {finding.practice}: {finding.detail}")
    if result.problems:
        raise RuntimeError("the audit could not check everything:\n- "
                           + "\n- ".join(result.problems))
    return {"findings": len(result.findings), "new": result.new,
            "practices": sorted({f.practice for f in result.findings} & set(PRACTICES))}
