"""What a run says while it works: a plain line per decision, and the change's status.

Each event recorded by a run is also one line in the run's log (the Prefect UI's Logs
tab), in words (`describe`), and the run is tagged with the change's key and service.
The markdown artifact `status-<change>` says where the change stands and what it waits
for; it is written at submit, before every wait, and when a run ends, each run keeping
only its latest, so the Artifacts tab of any run shows the change's latest word.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import Pause
from prefect.logging import get_run_logger
from prefect.states import Failed

from domain.events import PAYLOADS, EventType, payload_of
from domain.models import ChangeEvent, ChangeRequest
from integrations.factory import Adapters
from tasks.markdown import plain

if TYPE_CHECKING:
    from tasks.common import ChangeStopped

E = EventType

LINES: dict[EventType, Callable[[Any], str]] = {
    E.VALIDATION_FAILED: lambda p: "refused at submit: " + "; ".join(p.problems),
    E.CHANGE_SUBMITTED: lambda p: f"submitted by {p.author}: {p.summary}",
    E.APPROVAL_RECORDED: lambda p: (
        f"approved verbally by {p.person_id} as {p.role} ({p.via}), recorded by "
        f"{p.recorded_by} with their code" if p.channel == "verbal" else
        f"{p.decision}d as {p.role} ({p.purpose}) by {p.person_id}, code checked"),
    E.PROCEDURE_CHECKED: lambda p: (
        f"fits standard procedure {p.procedure}" if p.fits
        else "does NOT fit its standard procedure: " + "; ".join(p.reasons)),
    E.CHANGE_RECLASSIFIED: lambda p: f"handled as a {p.to} change",
    E.GATE_BYPASSED: lambda p: f"gate {p.gate} bypassed (emergency, recorded)",
    E.OBLIGATION_OPENED: lambda p: (f"owes {p.obligation} by {p.due[:16]} UTC "
                                    f"({', '.join(p.owners)})"),
    E.OBLIGATION_RESPONDED: lambda p: (
        f"{p.purpose} {'done' if p.decision == 'approve' else 'REFUSED'} by {p.person_id}, "
        "code checked"),
    E.REMINDER_SENT: lambda p: f"reminder: {p.obligation} {p.status} -> {', '.join(p.to)}",
    E.ESCALATED: lambda p: f"ESCALATED: {p.obligation} {p.status} -> {', '.join(p.to)}",
    E.APPROVAL_REQUESTED: lambda p: (
        f"asked for the {p.purpose} decision as {p.role}: "
        + (f"in Jira ({p.where})" if p.channel == "jira" else
           f"codes sent to {', '.join(p.digests) or 'nobody'}")
        + (f"; NOT REACHED: {', '.join(p.unreached)}" if p.unreached else "")),
    E.APPROVAL_ATTEMPT_FAILED: lambda p: f"refused a decision: {p.reason}",
    E.APPROVAL_EXPIRED: lambda p: f"the {p.purpose} decision as {p.role} EXPIRED",
    E.CHANGE_REJECTED: lambda p: "REJECTED",
    E.NOTICE_FAILED: lambda p: f"notice to {p.to} by {p.channel or 'no channel'} FAILED: "
                               f"{p.reason}",
    E.DEPLOYMENT_STARTED: lambda p: "deploying to production",
    E.DEPLOYMENT_FAILED: lambda p: "deployment FAILED",
    E.ROLLBACK_FAILED: lambda p: "ROLLBACK FAILED",
    E.STAGING_PASSED: lambda p: "staging deploy and tests passed",
    E.STAGING_FAILED: lambda p: "staging FAILED",
    E.GATES_PASSED: lambda p: "gates passed: " + ", ".join(
        f"{g.gate} (the ticket's claim)" if g.source == "ticket" else g.gate for g in p.gates),
    E.GATES_BLOCKED: lambda p: "BLOCKED by gates",
    E.DEPLOYMENT_SCHEDULED: lambda p: (f"scheduled for {p.slot[:19]} UTC; told "
                                       f"{', '.join(p.notified)}"),
    E.AVAILABILITY_CONFIRMED: lambda p: f"{p.person_id} confirmed availability as {p.role}",
    E.DEPLOYMENT_SUCCEEDED: lambda p: f"deployed {p.version} to production",
    E.VERIFICATION_PASSED: lambda p: "verified: smoke checks and monitors pass",
    E.VERIFICATION_FAILED: lambda p: "verification FAILED: " + ", ".join(
        c.name for c in p.checks if not c.passed),
    E.ROLLBACK_SUCCEEDED: lambda p: (f"rolled back to {p.to_version} in "
                                     f"{p.minutes * 60:.1f} s (plan: {p.estimate_minutes} min)"),
    E.INCIDENT_OPENED: lambda p: (f"incident {p.incident_id} opened as P{p.priority}, review "
                                  f"due {p.review_due[:10]}"),
    E.CHANGE_CLOSED: lambda p: f"closed: {p.outcome}",
}
"""A readable line for each event worth showing, from its payload model."""


def describe(event: ChangeEvent) -> str | None:
    """One readable line for an event worth showing, or None."""
    kind = EventType(event.type)
    line = LINES.get(kind)
    return None if line is None else line(payload_of(event, PAYLOADS[kind]))




@contextmanager
def status_kept(a: Adapters, change_id: str) -> Iterator[None]:
    """Publish the change's status when the run ends, however it ends.

    A run that suspends has just said what it waits for, and is left to say it.
    """
    suspended = False
    try:
        yield
    except Pause:
        suspended = True
        raise
    finally:
        if not suspended:
            try:
                publish_status(a, change_id)
            except Exception as exc:  # noqa: BLE001 - never hides how the run ended
                get_run_logger().warning("the status of %s was not published: %s",
                                         change_id, exc)


def tag_run(change: ChangeRequest) -> None:
    """Tag the flow run with the change's key and `service:<name>`, to find it by either."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run = context.flow_run
    tags = sorted({*run.tags, change.id, f"service:{change.service}"})
    if tags != sorted(run.tags):
        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, tags=tags)


def log_event(event: ChangeEvent) -> None:
    """The event's line in the run's log, when in a run and the event is worth a line."""
    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    line = describe(event)
    if line is not None:
        get_run_logger().info("%s: %s", event.change_id, line)


def status_key(change_id: str, kind: str = "status") -> str:
    """The change's artifact key of `kind` (Prefect keys: lowercase, digits and dashes)."""
    return f"{kind}-" + "".join(c if c.isalnum() else "-" for c in change_id.lower())


def stopped(change_id: str, stop: ChangeStopped) -> State[Any]:
    """End the run with the policy's stop as its outcome, not as a crash.

    One readable line in the run's log (no traceback), a `refused-<change>` artifact that
    lists what to fix, and a Failed state named for the outcome (`Refused`, `Rejected`,
    `Stopped`) whose message is the stop's. Called in the flow directly, the run raises
    the stop again for its caller.
    """
    get_run_logger().warning("%s: %s", stop.outcome.upper(), stop)
    first, *_ = str(stop).splitlines() or [stop.outcome]
    lines = [f"# {plain(change_id)}: {stop.outcome.lower()}", "", plain(first.rstrip(":")),
             "", "## What to fix", "", *(f"- {plain(fix)}" for fix in stop.fixes)]
    create_markdown_artifact(markdown="\n".join(lines), key=status_key(change_id, "refused"),
                             description=f"Why {change_id} stopped, and what to fix")
    return Failed(name=stop.outcome, message=str(stop), data=stop)


def publish_status(a: Adapters, change_id: str, waiting: str | None = None) -> None:
    """Write the change's status artifact: its state, what it waits for, what happened.

    Only in a flow run, and only for a change the log holds.
    """
    record = a.change_log.record(change_id) if FlowRunContext.get() is not None else None
    if record is None:
        return
    events = a.change_log.events(change_id)
    outcome = f", outcome **{record.outcome}**" if record.outcome else ""
    lines = [f"# {plain(change_id)}: **{record.state}**{outcome}", ""]
    if waiting:
        lines += [f"**Waiting for:** {plain(waiting)}", ""]
    lines += ["| when (UTC) | what |", "|---|---|",
              *(f"| {e.at:%Y-%m-%d %H:%M:%S} | {plain(said)} |" for e in events
                if (said := describe(e)) is not None)]
    key, markdown = status_key(change_id), "\n".join(lines)
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    with get_client(sync_client=True) as client:  # one status per run, written over
        mine = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[context.flow_run.id])), limit=1)
        if mine:
            client.update_artifact(mine[0].id, ArtifactUpdate(data=markdown))
            return
    create_markdown_artifact(markdown=markdown, key=key, description=f"Where {change_id} stands")
