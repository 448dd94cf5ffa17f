"""Tasks on the change log's integrity (policy section 7)."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from domain.events import EventType
from domain.history import last_gates
from domain.lifecycle import ChangeRecord
from domain.models import ChangeEvent, ChangeRequest
from integrations.anchors import Anchor
from integrations.factory import Adapters
from integrations.ports import ChangeLog, Verification
from tasks.anchoring import AnchorCheck
from tasks.common import record, step
from tasks.markdown import gates_table, plain
from tasks.notices import tell_author
from tasks.tickets import comment_once, link_evidence, move_ticket


@task(name="verify-chain")
def verify_chain(change_log: ChangeLog) -> Verification:
    """Check the chain and fold every change again; the result names what does not hold."""
    return change_log.verify(fold_changes=True)


@task(name="publish-verification")
def publish_verification(result: Verification, anchored: AnchorCheck,
                         anchor: Anchor | None) -> None:
    """Leave the verification in Prefect as a markdown artifact, head and anchor included."""
    holds = result.ok and anchored.problem is None
    status = "holds" if holds else "is BROKEN"
    lines = [f"# Change log chain {status}", "",
             "| what | value |", "|---|---|",
             f"| events verified | {result.checked} |",
             f"| head event | {result.head_seq} |",
             f"| head hash | `{result.head_hash}` |",
             f"| earlier anchors held | {anchored.checked} |"]
    if result.problem is not None:
        lines.append(f"| first bad event | {result.bad_seq}: {result.problem} |")
    lines += [f"| record does not hold | {m} |" for m in result.mismatches]
    if anchored.problem is not None:
        lines.append(f"| anchor not held | {anchored.problem} |")
    if anchor is not None:
        lines.append(f"| anchored | event {anchor.seq}, key `{anchor.key_id}` |")
    lines += ["", "Keep the head hash: `changeflow log verify --expect SEQ:HASH` checks that "
              "the chain still holds it."]
    create_markdown_artifact(key="change-log-verification", markdown="\n".join(lines),
                             description=f"Change log chain {status}")


@step("close-change")
def close_change(a: Adapters, change: ChangeRequest) -> ChangeRecord:
    """Step 7: the outcome on the ticket, the record closed, the evidence as an artifact."""
    record_now = a.change_log.record(change.id)
    assert record_now is not None
    if record_now.state != "closed":
        # The ticket first: if the ticket system is down, the change stays open and the
        # next run closes it, telling the ticket once; closed first, it would never hear.
        outcome = record_now.outcome or record_now.state
        incidents = f"; incidents: {', '.join(record_now.incidents)}" \
            if record_now.incidents else ""
        comment_once(a, change.id, f"changeflow: closed with outcome {outcome}{incidents}. "
                     f"Evidence: `changeflow log export {change.id}`.")
        move_ticket(a, change.id, "closed")
        link_evidence(a, change.id, evidence_links(change))
        record(a, change.id, EventType.CHANGE_CLOSED, outcome=outcome)
        tell_author(a, change.id, change.author, "closed", f"{change.id} closed: {outcome}",
                    f"Your change {change.id} ({change.service} {change.version}) is closed "
                    f"with outcome {outcome}{incidents}.")
    closed = a.change_log.record(change.id)
    assert closed is not None
    create_markdown_artifact(key=f"evidence-{change.id.lower()}",
                             markdown=evidence_markdown(closed, a.change_log.events(change.id)),
                             description=f"{change.id} evidence summary")
    return closed


def evidence_links(change: ChangeRequest) -> list[tuple[str, str]]:
    """The change's evidence as (URL, title): this flow run, the PR, CI and SAST runs."""
    run_url = flow_run.ui_url if flow_run.id else None
    links = [(str(run_url), f"changeflow flow run for {change.id}")] if run_url else []
    ev = change.evidence
    for url, title in ((ev.code_review and ev.code_review.url, "Pull request"),
                       (ev.ci and ev.ci.url, "CI run"), (ev.sast and ev.sast.url, "SAST report")):
        if url:
            links.append((url, title))
    return links


def evidence_markdown(rec: ChangeRecord, events: list[ChangeEvent]) -> str:
    """The change's record (policy section 7) and its event trail, as markdown."""
    lines = [f"# {rec.change_id}: {plain(rec.summary)}", "",
             "| field | value |", "|---|---|",
             f"| change ID | {rec.change_id} |",
             f"| category | {rec.category.value if rec.category else '-'} |",
             f"| description | {plain(rec.description, limit=300)} |",
             f"| author | {plain(rec.author)} |",
             f"| approvers | {plain(', '.join(rec.approvers)) or '-'} |",
             f"| deployment date | {rec.deployed_at.isoformat() if rec.deployed_at else '-'} |",
             f"| outcome | {rec.outcome or rec.state} |",
             f"| incidents | {plain(', '.join(rec.incidents)) or 'none'} |",
             f"| service, version | {plain(rec.service)} {plain(rec.version)} |", "",
             "## Gates before production", ""]
    gates = last_gates(events)
    if gates is None:
        lines += ["No gates were evaluated.", ""]
    else:
        lines += [*gates_table(gates), ""]
    lines += ["## Event trail", "", "| # | time (UTC) | event | actor |", "|---|---|---|---|"]
    lines += [f"| {e.seq} | {e.at:%Y-%m-%d %H:%M:%S} | {e.type} | {plain(e.actor)} |"
              for e in events]
    lines += ["", f"Last event hash: `{events[-1].hash if events else '-'}`; check the whole "
              "chain with `changeflow log verify`."]
    return "\n".join(lines)
