"""Tasks on the change log's integrity (policy section 7)."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact

from integrations.changelog_sql import SqlChangeLog, Verification


@task(name="verify-chain")
def verify_chain(change_log: SqlChangeLog) -> Verification:
    """Recompute the change log's hash chain; the result names the first bad event."""
    return change_log.verify()


@task(name="publish-verification")
def publish_verification(result: Verification) -> None:
    """Leave the verification in Prefect as a markdown artifact, head hash included."""
    status = "holds" if result.ok else "is BROKEN"
    lines = [f"# Change log chain {status}", "",
             "| what | value |", "|---|---|",
             f"| events verified | {result.checked} |",
             f"| head event | {result.head_seq} |",
             f"| head hash | `{result.head_hash}` |"]
    if not result.ok:
        lines.append(f"| first bad event | {result.bad_seq}: {result.problem} |")
    lines += ["", "Keep the head hash: a later rewrite of anything before it is detectable "
              "against it."]
    create_markdown_artifact(key="change-log-verification", markdown="\n".join(lines),
                             description=f"Change log chain {status}")
