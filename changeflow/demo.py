"""`changeflow demo`: the lifecycles end to end on the embedded defaults.

It sets up the embedded stack in `var/demo/` (configuration with an always-open schedule,
the example tickets, a SQLite change log, the sample service on 127.0.0.1:18765 with
version 2.1.0 broken in production), then starts the `change-request` flow for each
example ticket on a temporary Prefect server. Notices go by e-mail through a local mail
server (aiosmtpd on 127.0.0.1, delivering to the Maildir `var/demo/mail`). The
approvals come from a scripted approver that reads each person's one-time codes from
that mail and resumes the waiting runs through Prefect's API, as a person would in the UI.

Then the emergency follow-up: one emergency is documented, reviewed and signed off
through `emergency-obligation`; the other is left undocumented, and
`emergency-follow-up`, run with the clock 25 hours ahead, escalates it to the CISO.
Then someone deploys a version by hand, and `practices-audit` finds it, once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

from changeflow.approver import ScriptedApprover, mail_messages, mailed_codes
from changeflow.prefect_server import free_port, local_prefect_server
from changeflow.report import obligation_rows, print_changes, print_obligations
from changeflow.sample_service import deploy
from changeflow.stack import SAMPLE_PORT, Stack, embedded_stack
from config.loader import check_config
from config.settings import PROJECT_ROOT
from domain.events import PracticeFinding, payload_of
from integrations.anchors import FileAnchors
from integrations.factory import installed
from reporting.model import Quarter
from tasks.anchoring import publish_head
from tasks.progress import describe

DEMO_TICKETS = {
    "CHG-104": "a normal change without a rollback plan",
    "CHG-101": "a normal change",
    "CHG-102": "a major change touching authentication",
    "CHG-103": "a normal change whose version is broken in production",
    "CHG-105": "a standard certificate renewal (self-approved, fits its procedure)",
    "CHG-201": "an emergency hotfix for a P1 incident (verbal CISO approval)",
    "CHG-202": "an emergency patch for an exploited CVE (left undocumented)",
}
DOCUMENTED = {"scope": "sample service payments client, production",
              "risk_assessment": "Low: a longer timeout, no new code path",
              "testing_plan": "CI, then the production smoke checks and monitors"}
"""What the CHG-201 engineer adds to the ticket after the incident (the demo writes it)."""
FOLLOW_UP_HOURS = 25
"""How far the demo moves the clock to show the 24-hour documentation deadline pass."""
DEMO_SENDER = "changeflow@demo.localhost"
BROKEN = "2.1.0@production"
HAND_DEPLOYED = "1.1.1"
"""A version put in production outside changeflow, for the practices audit to find."""
APPROVAL_TIMEOUT_HOURS = 0.05
"""Three minutes: if the scripted approver cannot answer, the demo ends instead of waiting."""


def show(stack: Stack, key: str, since: int = 0) -> int:
    """Print the change's events after seq `since`; returns the last seq shown."""
    last = since
    for event in stack.adapters.change_log.events(key):
        line = describe(event) if event.seq > since else None
        if line:
            print(f"  {key:8} {line}")
        last = max(last, event.seq)
    return last


def run_change(stack: Stack, key: str) -> None:
    """Start `change-request` for one ticket and print what the change log recorded."""
    from flows.change_request import change_request

    try:
        change_request(key)
    except Exception as exc:  # noqa: BLE001 - a refused or stopped change is an outcome
        print(f"  {key:8} the run failed with {type(exc).__name__}, as the policy requires:")
    show(stack, key)


def follow_up_emergencies(stack: Stack) -> None:
    """Close CHG-201's obligations; let CHG-202's documentation go overdue and escalate."""
    from flows.emergency import emergency_follow_up, emergency_obligation

    log = stack.adapters.change_log
    seen = {key: log.events(key)[-1].seq for key in ("CHG-201", "CHG-202")}
    ticket = stack.settings.resolved_tickets_dir / "CHG-201.yaml"
    fields = yaml.safe_load(ticket.read_text())
    ticket.write_text(yaml.safe_dump({**fields, **DOCUMENTED}, sort_keys=False))
    print("  CHG-201  the engineer completes the ticket; the owners answer emergency-obligation")
    for kind in ("approval_confirmation", "documentation", "post_hoc_review", "ciso_signoff"):
        emergency_obligation("CHG-201", kind)
    seen["CHG-201"] = show(stack, "CHG-201", seen["CHG-201"])
    later = stack.adapters.replace(
        clock=lambda: datetime.now(UTC) + timedelta(hours=FOLLOW_UP_HOURS))
    print(f"  emergency-follow-up, with the clock {FOLLOW_UP_HOURS} h ahead:")
    with installed(later):
        emergency_follow_up()
        emergency_follow_up()  # run again at once: nothing is sent twice
    show(stack, "CHG-202", seen["CHG-202"])


def audit_practices(stack: Stack) -> None:
    """Someone deploys by hand, outside changeflow; the daily audit finds it, once."""
    from flows.practices_audit import practices_audit

    print(f"  someone deploys {HAND_DEPLOYED} to production by hand, with no change")
    deploy(stack.root / "var" / "sample", "production", HAND_DEPLOYED)
    first = practices_audit()
    log = stack.adapters.change_log
    for finding_id in first["new"]:
        event = log.events(finding_id)[0]  # then the deliveries of its notices
        found = payload_of(event, PracticeFinding)
        print(f"  {finding_id} {found.practice}: {found.detail}")
    again = practices_audit()
    print(f"  run again: {again['findings']} finding(s), {len(again['new'])} new "
          "(each is recorded once); the CISO and Security were notified")


def write_quarterly_report(stack: Stack) -> None:
    """The current quarter's report and evidence pack, as `changeflow report` writes them."""
    from tasks.reporting import produce_report

    quarter = Quarter.containing(datetime.now(UTC), stack.adapters.config.policy.schedule.zone)
    out = stack.root / "reports" / str(quarter)
    report, written = produce_report(stack.adapters, quarter, out)
    controls = report.controls
    print(f"8. Quarterly report {quarter}: {len(report.changes)} changes, "
          f"{int(controls['exceptions'].sum())} control exception(s), "
          f"{len(report.emergencies)} emergencies, {len(report.rollbacks)} rollback(s), "
          f"{len(report.findings)} prohibited-practice finding(s)")
    print(f"  {written['report.html'].relative_to(PROJECT_ROOT)} (with CSV, XLSX and "
          f"{written['evidence'].name} beside it)")
    keys = stack.adapters.change_log.keys
    pack = written["evidence"].relative_to(PROJECT_ROOT)
    argv = ["tools/verify_pack.py", str(pack), "--public-key",
            f"{keys.current.id}:{keys.current.public_key()}"]
    checked = subprocess.run([sys.executable, "-I", *argv], cwd=PROJECT_ROOT, text=True,
                             capture_output=True, timeout=120, check=False)
    if checked.returncode != 0:
        raise RuntimeError(f"the evidence pack does not verify: {checked.stdout}{checked.stderr}")
    print(f"  the pack checked alone (Python's standard library and the public key):\n"
          f"    python3 {' '.join(argv)}\n    {checked.stdout.splitlines()[0]}")


@contextmanager
def local_mail_server(maildir: Path) -> Iterator[int]:
    """A mail server on 127.0.0.1 that delivers every message to `maildir`; its port."""
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def run_demo() -> int:
    """Run the demo in `var/demo/` from scratch; returns the exit status."""
    started = time.monotonic()
    root = PROJECT_ROOT / "var" / "demo"
    shutil.rmtree(root, ignore_errors=True)
    maildir = root / "mail"
    with local_prefect_server(root / "prefect") as api, local_mail_server(maildir) as smtp, \
            embedded_stack(root, port=SAMPLE_PORT, broken=(BROKEN,), approval_poll_seconds=0.2,
                           approval_timeout_hours=APPROVAL_TIMEOUT_HOURS,
                           notifiers=["email"], smtp_host="127.0.0.1", smtp_port=smtp,
                           smtp_security="none", smtp_from=DEMO_SENDER) as stack:
        print(f"1. Configuration ({stack.settings.config_dir}: the shipped policy with an "
              "always-open schedule)")
        _, problems = check_config(stack.settings.config_dir)
        for problem in problems:
            print(f"  {problem}")
        if problems:
            return 1
        print(f"2. Sample service at {stack.service.url} (version 2.1.0 is broken in "
              "production)")
        print(f"3. change-request runs on the Prefect server at {api.removesuffix('/api')} "
              "(open it to watch);\n   notices are mailed through a local mail server to "
              f"{maildir.relative_to(PROJECT_ROOT)}; a scripted approver answers with the "
              "codes each person was mailed")
        roster = stack.adapters.config.roster
        with ScriptedApprover(lambda: mailed_codes(maildir, roster)).start(interval=0.2):
            for key, what in DEMO_TICKETS.items():
                print(f"  -- {key}: {what}")
                run_change(stack, key)
            print("4. Emergency obligations (policy section 5)")
            follow_up_emergencies(stack)
        print("5. Prohibited-practice audit (policy section 6)")
        audit_practices(stack)
        print("6. Change log")
        log = stack.adapters.change_log
        result = log.verify(fold_changes=True)
        print(f"  chain {'ok' if result.ok else 'BROKEN: ' + str(result.problem)}: "
              f"{result.checked} events, each MAC'd under key {log.keys.current.id} "
              f"({stack.settings.chain_key_file})")
        anchors = FileAnchors(stack.settings.resolved_anchor_file)
        anchor = publish_head(log, [anchors])
        print(f"  anchored head: event {anchor.seq} hash {anchor.hash} (signed with key "
              f"{anchor.key_id}) to {anchors.path}")
        print(f"  check it later: CHANGEFLOW_VAR_DIR="
              f"{stack.settings.var_dir.relative_to(PROJECT_ROOT)} .venv/bin/changeflow log "
              f"verify --anchors --expect {anchor.seq}:{anchor.hash}")
        print("7. changeflow changes, and changeflow obligations (what is still open)")
        print_changes(stack.adapters.change_log.changes(), indent="  ")
        soon = timedelta(hours=stack.adapters.config.policy.emergency.remind_before_hours)
        print_obligations(obligation_rows(stack.adapters.change_log.changes(emergency=True),
                                          datetime.now(UTC), soon), indent="  ")
        notices: dict[str, Any] = {}
        for mail in mail_messages(maildir):
            kind = str(mail["X-Changeflow-Kind"])
            notices[kind] = notices.get(kind, 0) + 1
        print(f"  evidence: {stack.settings.resolved_database_url}; to query it:\n"
              f"    CHANGEFLOW_VAR_DIR={stack.settings.var_dir.relative_to(PROJECT_ROOT)} "
              ".venv/bin/changeflow changes")
        print(f"  notices: {sum(notices.values())} e-mails in {maildir} "
              f"({', '.join(f'{n} {k}' for k, n in notices.items())})")
        write_quarterly_report(stack)
    print(f"demo finished in {time.monotonic() - started:.1f} s")
    return 0 if result.ok else 1
