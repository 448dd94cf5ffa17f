"""Notices: e-mail to a local SMTP server, and what routing adds to each notice.

Three ways to mail the same code notice to aiosmtpd on 127.0.0.1, one connection each:

- floor: `smtplib` alone, the message built once (the least a notice can cost);
- adapter: `EmailNotifier.notify`, which builds the text and HTML message each time;
- routed: `tasks.notices.send` in a flow: the adapter as a task of the one retry layer,
  and the `notice_delivered` event appended to a SQLite change log.

The figures are notices per second and ratios to the floor. An approval request
(`request_decision` for the review of CHG-101, its codes mailed to every engineering
lead) is timed too: what it adds is its time less the adapter's for the codes it sent.
"""

from __future__ import annotations

import smtplib
import tempfile
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from prefect import flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.testing.utilities import prefect_test_harness

from bench.lifecycle import quiet_console
from changeflow.prefect_server import free_port
from changeflow.stack import embedded_stack
from domain.models import Notice
from integrations.email_notifier import EmailNotifier
from integrations.factory import Adapters
from tasks.approvals import request_decision
from tasks.intake import submit_change
from tasks.notices import send

NOTICES = 200
APPROVALS = 20
NOTICE = Notice(to="erin", kind="approval-code", change_id="CHG-101",
                subject="CHG-101: your review decision as engineering_lead is needed",
                body="Paginate the orders list\nOpen http://127.0.0.1:4200/runs/flow-run/x, "
                     "choose Resume, and enter this code with your decision.\n"
                     "code: K7QF-M2XP\nrun: x\nrole: engineering_lead\npurpose: review",
                link="http://127.0.0.1:4200/runs/flow-run/x")


def _per_second(seconds: float, count: int) -> float:
    return round(count / seconds, 1)


@flow(name="bench-notices")
def routed(a: Adapters, count: int) -> float:
    """Seconds to send `count` notices through the routing layer."""
    started = time.perf_counter()
    for _ in range(count):
        assert send(a, NOTICE) == "email"
    return time.perf_counter() - started


@flow(name="bench-approval-requests")
def requests(a: Adapters, count: int) -> tuple[float, int]:
    """Seconds for `count` review requests of CHG-101, and the codes they sent."""
    change = submit_change(a, "CHG-101")
    leads = [p.id for p in a.config.roster.holding("engineering_lead") if p.id != change.author]
    started, codes = time.perf_counter(), 0
    for i in range(count):
        asked = request_decision(a, change, "engineering_lead", "review", leads, f"bench-{i}")
        codes += len(asked.digests)
    return time.perf_counter() - started, codes


def run_notice_benchmarks(count: int = NOTICES) -> dict[str, Any]:
    """Notices per second to local SMTP, three ways, and what routing adds."""
    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with tempfile.TemporaryDirectory(prefix="changeflow-bench-notices-") as tmp, \
                prefect_test_harness(server_startup_timeout=90), \
                temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), \
                quiet_console(), \
                embedded_stack(Path(tmp), port=0, notifiers=["email"], smtp_host="127.0.0.1",
                               smtp_port=port, smtp_security="none",
                               smtp_from="changeflow@bench.localhost") as stack:
            notifier = stack.adapters.notifiers["email"]
            assert isinstance(notifier, EmailNotifier)
            mail = notifier.message(NOTICE)
            started = time.perf_counter()
            for _ in range(count):
                with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
                    smtp.send_message(mail)
            floor = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(count):
                notifier.notify(NOTICE)
            adapter = time.perf_counter() - started
            submit_change.fn(stack.adapters, "CHG-101")
            routing = routed(stack.adapters, count)
            asking, codes = requests(stack.adapters, APPROVALS)
    finally:
        controller.stop()
    added_ms = (routing - adapter) / count * 1000
    per_approval_ms = asking / APPROVALS * 1000
    adapter_ms = adapter / count * 1000
    return {"notices": count,
            "floor_per_s": _per_second(floor, count),
            "adapter_per_s": _per_second(adapter, count),
            "routed_per_s": _per_second(routing, count),
            "adapter_ratio": round(adapter / floor, 2),
            "routed_ratio": round(routing / floor, 2),
            "added_ms_per_notice": round(added_ms, 1),
            "approvals": APPROVALS,
            "codes_per_approval": codes / APPROVALS,
            "ms_per_approval_request": round(per_approval_ms, 1),
            "added_ms_per_approval": round(per_approval_ms - adapter_ms * codes / APPROVALS, 1)}


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A line for `make bench`."""
    r = results
    return [f"notices: {r['notices']} e-mails to local SMTP: floor (smtplib) "
            f"{r['floor_per_s']}/s, adapter {r['adapter_per_s']}/s ({r['adapter_ratio']}x), "
            f"routed (retry task and notice_delivered record) {r['routed_per_s']}/s "
            f"({r['routed_ratio']}x); routing adds {r['added_ms_per_notice']} ms a notice",
            f"notices: an approval request ({r['codes_per_approval']:g} code mailed) takes "
            f"{r['ms_per_approval_request']} ms, {r['added_ms_per_approval']} ms more than "
            "mailing its codes"]


if __name__ == "__main__":
    for line in summary_lines(run_notice_benchmarks()):
        print(line)
