"""`changeflow demo`: the foundation end to end on embedded defaults.

It validates the configuration, starts the local sample service, and walks the example
tickets through the policy's steps with the real adapters: a ticket without a rollback
plan is refused with its problems, a good change deploys and is verified, and a change
whose version is broken fails verification, is rolled back and opens a P3 incident.
Every decision is appended to a fresh change log, whose chain is then verified.

The approvals here come from a scripted approver that picks the first eligible person
of each role from the roster and records the approval as given over the `demo-script`
channel; nothing in the evidence pretends otherwise.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime
from typing import Any

from changeflow.report import print_changes
from changeflow.sample_service import deploy, start_sample_service
from config.loader import check_config
from config.settings import PROJECT_ROOT, Settings
from domain.approvals import (
    ApprovalVerdict,
    check_approvals,
    eligible_approvers,
    required_approvals,
)
from domain.calendar import add_business_days
from domain.gates import evaluate_gates, gates_block
from domain.intake import validate_ticket
from domain.models import Approval, ChangeRequest, Decision, Notice
from domain.services import Command, EnvironmentSpec
from integrations.factory import Adapters, build

DEMO_TICKETS = ("CHG-104", "CHG-101", "CHG-102", "CHG-103")
BROKEN_VERSION = "2.1.0"
"""Passes staging, fails in production: the demo's automatic rollback."""
SAMPLE_PORT = 18765
SCRIPT = "demo-script"


def now() -> datetime:
    """The demo's clock (real time)."""
    return datetime.now(UTC)


class Walkthrough:
    """One change at a time through submit, review, test, gates, deploy, verify, close."""

    def __init__(self, adapters: Adapters, settings: Settings) -> None:
        self.a = adapters
        self.cfg = adapters.config
        self.log = adapters.change_log
        self.values = {"python": _python(), "var_dir": str(settings.var_dir)}

    def say(self, change_id: str, text: str) -> None:
        """Print one line about a change."""
        print(f"  {change_id:8} {text}")

    def record(self, change_id: str, type_: str, actor: str, **payload: Any) -> None:
        """Append one event to the change log, now."""
        self.log.append(change_id, type_, actor, payload, now())

    def run(self, key: str) -> None:
        """Take one ticket as far as the policy lets it go."""
        ticket = self.a.tickets.get(key)
        checked = validate_ticket(ticket, self.cfg.policy, self.cfg.roster, self.cfg.services)
        if isinstance(checked, list):
            known = {k: v for k, v in ticket.fields.items()
                     if k in ("summary", "category", "service", "version", "author")}
            self.record(key, "validation_failed", SCRIPT, problems=checked, **known)
            self.a.tickets.add_comment(key, "changeflow cannot accept this change yet:\n- "
                                       + "\n- ".join(checked))
            self.a.tickets.transition(key, "needs information")
            self.say(key, f"REFUSED at submit: {'; '.join(checked)}")
            return
        change = checked
        self.record(key, "change_submitted", change.author, summary=change.summary,
                    description=change.description, category=change.category.value,
                    service=change.service, version=change.version, author=change.author)
        self.say(key, f"submitted: {change.summary} ({change.category.value}, "
                      f"{change.service} {change.version})")
        if not self.review(change) or not self.stage(change):
            return
        gates = evaluate_gates(change.model_copy(update={"evidence": change.evidence.model_copy(
            update={"staging_passed": True})}), self.cfg.policy, self.cfg.roster,
            self.verdict(change))
        blocking = gates_block(gates)
        self.record(key, "gates_blocked" if blocking else "gates_passed", SCRIPT,
                    gates=[g.model_dump(mode="json") for g in gates])
        if blocking:
            self.say(key, f"BLOCKED by gates: {'; '.join(g.reason for g in blocking)}")
            return
        self.say(key, f"gates passed: {', '.join(g.gate for g in gates)}")
        self.deploy_and_verify(change)

    def approvals(self, change: ChangeRequest) -> list[Approval]:
        """The approvals the change log holds for a change."""
        found = []
        for event in self.log.events(change.id):
            if event.type == "approval_recorded":
                found.append(Approval(role=event.payload["role"],
                                      person_id=event.payload["person_id"],
                                      decision=Decision(event.payload["decision"]),
                                      at=event.at, channel=event.payload["channel"]))
        return found

    def verdict(self, change: ChangeRequest) -> ApprovalVerdict:
        """The domain's judgement of the recorded approvals."""
        return check_approvals(change, self.approvals(change), self.cfg.policy,
                               self.cfg.roster)

    def review(self, change: ChangeRequest) -> bool:
        """Step 2: ask each required role, record each decision, judge them."""
        for req in required_approvals(change, self.cfg.policy):
            approver = eligible_approvers(req, change, self.cfg.roster)[0]
            self.record(change.id, "approval_requested", SCRIPT, role=req.role,
                        eligible=[p.id for p in eligible_approvers(req, change,
                                                                   self.cfg.roster)])
            self.record(change.id, "approval_recorded", approver.id, role=req.role,
                        person_id=approver.id, decision="approve", channel=SCRIPT)
            self.say(change.id, f"approved by {approver.name} as {req.role}")
        verdict = self.verdict(change)
        if not verdict.satisfied:
            self.record(change.id, "change_rejected", SCRIPT, problems=verdict.problems)
            self.say(change.id, f"REJECTED: {'; '.join(verdict.problems)}")
            return False
        self.record(change.id, "approval_granted", SCRIPT, approvers=verdict.approvers)
        return True

    def run_command(self, change: ChangeRequest, action: str, command: Command,
                    **values: str) -> bool:
        """Run a catalog command, its intent recorded before and its outcome after."""
        argv = command.render({**self.values, "service": change.service,
                               "version": change.version, **values})
        effect = self.log.record_intent(change.id, action, SCRIPT, {"argv": argv}, now())
        result = self.a.runner.run(argv, command.timeout_seconds, cwd=PROJECT_ROOT)
        self.log.record_outcome(change.id, effect, SCRIPT, result.ok,
                                {"exit_code": result.exit_code, "timed_out": result.timed_out,
                                 "stdout": result.stdout[-500:], "stderr": result.stderr[-500:],
                                 "seconds": round(result.duration_seconds, 3)}, now())
        return result.ok

    def stage(self, change: ChangeRequest) -> bool:
        """Step 3: deploy to staging and run the staging tests."""
        env = self.env(change, "staging")
        self.record(change.id, "staging_started", SCRIPT, version=change.version)
        ok = self.run_command(change, "deploy-staging", env.deploy, environment="staging")
        ok = ok and all(self.run_command(change, f"test:{t.name}", t, environment="staging")
                        for t in env.tests)
        self.record(change.id, "staging_passed" if ok else "staging_failed", SCRIPT,
                    tests=[t.name for t in env.tests])
        self.say(change.id, "staging deploy and tests " + ("passed" if ok else "FAILED"))
        return ok

    def env(self, change: ChangeRequest, name: str) -> EnvironmentSpec:
        """The catalog entry of the change's service in one environment."""
        return self.cfg.services.services[change.service].environments[name]  # type: ignore[index]

    def checks_pass(self, change: ChangeRequest, env: EnvironmentSpec) -> tuple[bool, list[Any]]:
        """Step 6: the smoke checks and monitors; all must pass."""
        results = [self.a.checks.check(c) for c in [*env.smoke_checks, *env.monitors]]
        return all(r.passed for r in results), [r.model_dump(mode="json") for r in results]

    def previous_version(self, service: str) -> str:
        """What a rollback returns to: the last succeeded version, else the baseline."""
        good = [r for r in self.log.changes() if r.service == service
                and r.outcome == "succeeded" and r.version]
        return good[-1].version if good and good[-1].version else \
            str(self.cfg.services.services[service].baseline_version)

    def deploy_and_verify(self, change: ChangeRequest) -> None:
        """Steps 5 and 6: deploy to production, verify, roll back on failure."""
        env = self.env(change, "production")
        previous = self.previous_version(change.service)
        self.record(change.id, "deployment_started", change.author, environment="production",
                    version=change.version, previous_version=previous)
        ok = self.run_command(change, "deploy-production", env.deploy, environment="production")
        self.record(change.id, "deployment_succeeded" if ok else "deployment_failed", SCRIPT,
                    version=change.version)
        if ok:
            ok, results = self.checks_pass(change, env)
            self.record(change.id, "verification_passed" if ok else "verification_failed",
                        SCRIPT, checks=results)
        if ok:
            self.say(change.id, f"deployed {change.version} to production and verified")
            self.close(change, "succeeded")
            return
        self.say(change.id, f"verification FAILED for {change.version}: rolling back to "
                            f"{previous}")
        self.roll_back(change, env, previous)

    def roll_back(self, change: ChangeRequest, env: EnvironmentSpec, previous: str) -> None:
        """Section 4: the catalog's rollback, its verification, and the incident."""
        started = time.monotonic()
        self.record(change.id, "rollback_started", SCRIPT, to_version=previous,
                    reason="post-deployment verification failed")
        ok = self.run_command(change, "rollback-production", env.rollback,
                              environment="production", previous_version=previous)
        ok = ok and self.checks_pass(change, env)[0]
        minutes = round((time.monotonic() - started) / 60, 3)
        self.record(change.id, "rollback_succeeded" if ok else "rollback_failed", SCRIPT,
                    to_version=previous, minutes=minutes,
                    estimate_minutes=change.rollback_plan.time_estimate_minutes)
        policy = self.cfg.policy
        priority = policy.rollback.incident_priority if ok else 1
        opened = now()
        due = add_business_days(opened, policy.rollback.post_incident_review_business_days,
                                policy.schedule.holidays, policy.schedule.zone)
        incident = f"INC-{change.id}-1"
        self.record(change.id, "incident_opened", SCRIPT, incident_id=incident,
                    priority=priority, summary=f"Rollback of {change.id}",
                    review_due=due.isoformat())
        owner = change.rollback_plan.owner or change.author
        self.a.notifier.notify(Notice(to=owner, subject=f"{incident}: {change.id} rolled back",
                                      body=f"P{priority}; post-incident review due {due:%Y-%m-%d}",
                                      change_id=change.id, kind="incident"))
        self.record(change.id, "notification_sent", SCRIPT, to=owner, about=incident)
        self.say(change.id, f"rolled back in {minutes * 60:.1f} s (estimate "
                            f"{change.rollback_plan.time_estimate_minutes} min); {incident} "
                            f"opened as P{priority}")
        self.close(change, "rolled_back" if ok else "failed")

    def close(self, change: ChangeRequest, outcome: str) -> None:
        """Step 7: record the outcome and update the ticket."""
        self.record(change.id, "change_closed", SCRIPT, outcome=outcome)
        self.a.tickets.add_comment(change.id, f"changeflow: change closed, outcome {outcome}")
        self.a.tickets.transition(change.id, "closed")


def _python() -> str:
    return sys.executable


def run_demo() -> int:
    """Run the demo in `var/demo/`, from scratch; returns the exit status."""
    started = time.monotonic()
    var = PROJECT_ROOT / "var" / "demo"
    shutil.rmtree(var, ignore_errors=True)
    shutil.copytree(PROJECT_ROOT / "examples" / "tickets", var / "tickets",
                    ignore=shutil.ignore_patterns(".changeflow", "*.md"))
    settings = Settings(var_dir=var, tickets_dir=var / "tickets")
    print(f"1. Configuration ({settings.config_dir})")
    _, problems = check_config(settings.config_dir)
    for problem in problems:
        print(f"  {problem}")
    if problems:
        return 1
    adapters = build(settings)
    print(f"  ok: {adapters.config.policy.id} v{adapters.config.policy.version}")
    baseline = adapters.config.services.services["sample"].baseline_version or "1.0.0"
    print(f"2. Sample service on 127.0.0.1:{SAMPLE_PORT} (version {BROKEN_VERSION} is broken "
          "in production)")
    with start_sample_service(var / "sample", SAMPLE_PORT,
                              [f"{BROKEN_VERSION}@production"]) as service:
        for environment in ("staging", "production"):
            deploy(var / "sample", environment, baseline)
        print(f"  {service.url}: staging and production run {baseline}")
        print("3. Changes through the policy's steps")
        walk = Walkthrough(adapters, settings)
        for key in DEMO_TICKETS:
            walk.run(key)
    print("4. Change log")
    result = adapters.change_log.verify()
    print(f"  chain {'ok' if result.ok else 'BROKEN: ' + str(result.problem)}: "
          f"{result.checked} events, head {result.head_hash[:16]}...")
    print("5. Changes")
    print_changes(adapters.change_log.changes(), indent="  ")
    print(f"  evidence: {settings.resolved_database_url}; notices: "
          f"{settings.resolved_outbox_path}")
    adapters.close()
    print(f"demo finished in {time.monotonic() - started:.1f} s")
    return 0 if result.ok else 1

