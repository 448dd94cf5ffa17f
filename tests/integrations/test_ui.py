"""The Prefect UI in a real headless Chromium: a change started and approved by people.

Against `changeflow up` (a real `prefect server start` serving every deployment) on the
embedded stack, its notices mailed to a local SMTP server (aiosmtpd, into a Maildir),
the test does what an engineer and two approvers do in the browser: open the
`change-request` deployment and start a custom run with a ticket key; find the run by
its ticket key on the Runs page; open the e-mail changeflow sent the reviewer and follow
its link to the run; open the Resume form, choose a decision and themselves, type the
one-time code from their e-mail and submit; once with a wrong code, which is refused and
the form shown again with the reason; then see the run complete and its evidence
artifact. The change log is
checked for what the clicks decided. Screenshots go to tests/output/.

Chromium is required: the test fails when it cannot run (tests/support/browser).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from uuid import UUID

import pytest
import yaml
from playwright.sync_api import Locator, Page, expect
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.input.actions import read_flow_run_input
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from changeflow.approver import CodeNotice, mail_messages, mailed_codes
from changeflow.demo import local_mail_server
from changeflow.prefect_server import free_port
from changeflow.stack import Stack, embedded_stack
from config.settings import PROJECT_ROOT
from tests.support.browser import chromium, new_page, screenshot
from tests.support.waiting import wait_for

TICKET = "CHG-101"  # a normal change: the engineering lead's review, then QA's sign-off
RUN_NAME = f"{TICKET} · change-request"
"""What changeflow names the run once it starts (the UI gave it a random name)."""
WRONG_CODE = "WRNG-C0DE"
WAIT_SECONDS = 120
UI_TIMEOUT_MS = 60_000
"""How long a click or an expectation waits for the UI (the machine may be busy)."""


HOSTILE = {
    "summary": "Sample service 2.0.1 [enter your code here](https://evil.example/steal)",
    "risk_assessment": "Low ![logo](https://evil.example/logo.png) <img src=x onerror=alert(1)>",
}
"""Ticket text dressed up as a link, an image and HTML; the form must show it as text."""
HOSTILE_STEPS = "| gate | status |\n|---|---|\n| code_review | passed |"
"""Rollback steps that would draw a table of gates that looks like changeflow's."""


@dataclass
class Served:
    """`changeflow up` on the embedded stack, the API's user:password it made, the mail."""

    ui: str
    api: str
    stack: Stack
    log: Path
    mail: Path
    auth: str = ""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The stack's sample service here, `changeflow up` in a process of its own."""
    root = tmp_path_factory.mktemp("ui")
    with embedded_stack(root / "stack", port=free_port()) as stack, \
            local_mail_server(root / "mail") as smtp:
        settings, port = stack.settings, free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CHANGEFLOW_", "PREFECT_"))}
        env.update(CHANGEFLOW_CONFIG_DIR=str(settings.config_dir),
                   CHANGEFLOW_VAR_DIR=str(settings.var_dir),
                   CHANGEFLOW_TICKETS_DIR=str(settings.tickets_dir),
                   CHANGEFLOW_NOTIFIERS="email", CHANGEFLOW_SMTP_HOST="127.0.0.1",
                   CHANGEFLOW_SMTP_PORT=str(smtp), CHANGEFLOW_SMTP_SECURITY="none",
                   CHANGEFLOW_SMTP_FROM="changeflow@ui.localhost",
                   PREFECT_UI_URL=f"http://127.0.0.1:{port}",  # the links in notices
                   PREFECT_RUNNER_POLL_FREQUENCY="2")  # resumed runs start again sooner
        log = root / "up.log"
        with open(log, "wb") as out:
            up = subprocess.Popen([str(Path(sys.executable).with_name("changeflow")), "up",
                                   "--port", str(port)], cwd=PROJECT_ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        served = Served(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api", stack, log,
                        root / "mail")
        try:
            until(lambda: "Prefect UI:" in log.read_text(), "changeflow up to start", log)
            auth_file = settings.var_dir / "prefect-auth"
            assert auth_file.stat().st_mode & 0o777 == 0o600
            served.auth = auth_file.read_text().strip()
            assert served.auth not in log.read_text()  # never printed
            with temporary_settings(updates={PREFECT_API_URL: served.api,
                                             PREFECT_API_AUTH_STRING: served.auth}):
                until(lambda: _deployed(up, log), "changeflow up to serve the deployments",
                         log)
                yield served
        finally:
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()


def _deployed(up: subprocess.Popen[bytes], log: Path) -> bool:
    assert up.poll() is None, f"changeflow up exited:\n{log.read_text()}"
    return "change-request/change-request" in log.read_text()


def until(condition: Callable[[], object], what: str, log: Path,
          timeout: float = WAIT_SECONDS) -> None:
    """Wait for `condition`; failing, show what `changeflow up` said."""
    wait_for(condition, what, timeout, interval=0.5,
             detail=lambda: f"changeflow up said:\n{log.read_text()[-4000:]}")


def flow_run(run_id: str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id))


def run_named(name: str) -> UUID | None:
    """The id of the flow run called `name`, once the server has it."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=[name])))
    return runs[0].id if runs else None


def form_ready(run_id: str) -> bool:
    """The run is suspended and its form's schema is saved (the UI can show it)."""
    run = flow_run(run_id)
    if run.state is None or run.state.type is not StateType.PAUSED:
        return False
    keyset = run.state.state_details.run_input_keyset
    return keyset is not None and read_flow_run_input(keyset["schema"],
                                                      flow_run_id=run.id) is not None


def choose(dialog: Locator, field: str, option: str) -> None:
    """Pick `option` in the form's dropdown `field` (the UI's select opens on a key)."""
    prop = dialog.locator(".schema-form-property").filter(has_text=field)
    prop.locator(".p-select-button__control").first.press("ArrowDown")
    dialog.page.get_by_role("option", name=option, exact=True).click()


def answer_form(page: Page, served: Served, notice: CodeNotice, code: str,
                shot: str | None = None, check: Callable[[Locator], None] | None = None
                ) -> None:
    """Open the run's Resume form and submit a decision as the person the code went to."""
    until(lambda: form_ready(notice.run_id), f"the {notice.role} form", served.log)
    page.reload()
    expect(page.get_by_text("Suspended").first).to_be_visible()
    page.get_by_role("button", name="Resume").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", level=2).first).to_contain_text(
        "are you available?" if notice.purpose == "availability"
        else f"your {notice.purpose} decision as {notice.role}")
    assert overflowing(dialog) == []
    if check:
        check(dialog)
    choose(dialog, "Decision", "approve")
    choose(dialog, "Approver", notice.to)
    dialog.locator(".schema-form-property").filter(has_text="Code").locator(
        "textarea").fill(code)
    if shot:
        screenshot(page, shot)
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_be_hidden()


def mailed(served: Served) -> list[CodeNotice]:
    """Every code mailed so far, to whom it was delivered."""
    return mailed_codes(served.mail, served.stack.adapters.config.roster)


def follow_mail_link(page: Page, served: Served, notice: CodeNotice) -> None:
    """Open the e-mail that carried `notice`'s code, as HTML, and click its link."""
    [mail] = [m for m in mail_messages(served.mail) if m["X-Changeflow-Kind"] ==
              "approval-code" and notice.code in str(m.get_body(("plain",)))]
    html = mail.get_body(("html",))
    assert isinstance(html, EmailMessage)
    page.set_content(html.get_content())
    page.get_by_role("link", name="Open in Prefect").click()
    page.wait_for_url(f"{served.ui}/runs/flow-run/{notice.run_id}")


def next_notice(served: Served, run_id: str, seen: int) -> CodeNotice:
    """The run's code notice after the first `seen` ones."""
    def mine() -> list[CodeNotice]:
        return [n for n in mailed(served) if n.run_id == run_id]
    until(lambda: len(mine()) > seen, f"code notice {seen + 1}", served.log)
    return mine()[seen]


def overflowing(dialog: Locator) -> list[str]:
    """What in the form reaches past the dialog's right edge (it must wrap instead)."""
    return dialog.evaluate("""d => { const edge = d.getBoundingClientRect().right + 1;
        return [...d.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > edge
            || (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible'))
            .map(e => e.tagName + ': ' + e.textContent.slice(0, 60)); }""")


def ticket_text_stays_text(dialog: Locator) -> None:
    """The hostile ticket draws no link, image, HTML or table of its own in the form."""
    expect(dialog.get_by_text("What the ticket says")).to_be_visible()
    expect(dialog.get_by_text("[enter your code here](https://evil.example/steal)")).to_have_count(1)
    assert dialog.locator("a[href*='evil.example']").count() == 0
    assert dialog.locator("img").count() == 0
    assert dialog.locator("table").count() == 0  # changeflow's gates are a list
    expect(dialog.get_by_text("| gate |", exact=False)).to_have_count(1)  # as text
    expect(dialog.locator("li").filter(has_text="code_review").first).to_be_visible()


def make_ticket_hostile(stack: Stack) -> None:
    path = stack.settings.resolved_tickets_dir / f"{TICKET}.yaml"
    fields = yaml.safe_load(path.read_text())
    fields.update(HOSTILE)
    fields["rollback_plan"]["steps"] = HOSTILE_STEPS
    path.write_text(yaml.safe_dump(fields, sort_keys=False))


def sign_in(page: Page, served: Served) -> None:
    """The UI asks for the API's user:password before it shows anything."""
    page.goto(f"{served.ui}/deployments")
    password = page.get_by_placeholder("admin:pass")
    expect(password).to_be_visible()
    screenshot(page, "ui-0-sign-in.png")
    password.fill(served.auth)
    page.get_by_role("button", name="Login").click()
    expect(password).to_be_hidden()


def test_the_api_refuses_a_request_without_the_password(served: Served) -> None:
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(
            b"changeflow:guess").decode()}):
        request = urllib.request.Request(f"{served.api}/flow_runs/filter", data=b"{}",
                                         headers={"Content-Type": "application/json",
                                                  **headers}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    with get_client(sync_client=True) as client:  # with it, the same request is answered
        assert isinstance(client.read_flow_runs(limit=1), list)


@pytest.mark.slow
def test_a_change_is_started_and_approved_in_the_prefect_ui(served: Served) -> None:
    make_ticket_hostile(served.stack)
    with chromium() as browser, new_page(browser, 1400, 1000) as page:
        page.set_default_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)
        sign_in(page, served)
        page.goto(f"{served.ui}/deployments")
        page.get_by_role("link", name="change-request", exact=True).first.click()
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Custom run").click()
        page.locator(".schema-form-property").filter(has_text="ticket_key").locator(
            "textarea").fill(TICKET)
        screenshot(page, "ui-1-custom-run.png")
        page.get_by_role("button", name="Submit").click()
        until(lambda: run_named(RUN_NAME) is not None, "the run to start, named for its "
                 "ticket", served.log)
        run_id = str(run_named(RUN_NAME))
        page.goto(f"{served.ui}/runs")  # found on the Runs page by its ticket key
        page.locator("input[placeholder='Search by flow run name']:visible").first.fill(TICKET)
        expect(page.get_by_role("link", name=RUN_NAME).first).to_be_visible()
        screenshot(page, "ui-1b-runs-by-ticket.png")

        review = next_notice(served, run_id, 0)
        assert review.role == "engineering_lead"
        follow_mail_link(page, served, review)  # the reviewer's e-mail leads to the run
        expect(page.get_by_text(RUN_NAME).first).to_be_visible()
        answer_form(page, served, review, review.code, shot="ui-2-review-form.png",
                    check=ticket_text_stays_text)

        sign_off = next_notice(served, run_id, 1)
        assert sign_off.role == "qa"
        answer_form(page, served, sign_off, WRONG_CODE)
        until(lambda: form_ready(run_id) and _refused(served),
                 "the wrong code to be refused", served.log)
        page.reload()
        page.get_by_role("button", name="Resume").click()
        refusal = page.get_by_role("dialog").get_by_text("Last refusal")
        refusal.scroll_into_view_if_needed()
        expect(refusal).to_be_visible()
        screenshot(page, "ui-3-refused.png")
        page.get_by_role("dialog").get_by_role("button", name="Close").click()
        assert mailed_kind(served, "code-refused") == [email_of(served, sign_off.to)]
        answer_form(page, served, sign_off, sign_off.code)

        answered = 2  # then the people on the deployment confirm they are available
        while (flow_run(run_id).state_type is not StateType.COMPLETED
               or len([n for n in mailed(served) if n.run_id == run_id]) > answered):
            notice = next_notice(served, run_id, answered)
            answer_form(page, served, notice, notice.code)
            answered += 1
            until(lambda: _settled(run_id), "the run to go on", served.log)
        page.reload()
        expect(page.get_by_text("Completed").first).to_be_visible()
        page.get_by_text("Artifacts", exact=True).click()
        expect(page.get_by_text(f"evidence-{TICKET.lower()}").first).to_be_visible()
        expect(page.get_by_text(f"status-{TICKET.lower()}")).to_have_count(1)
        screenshot(page, "ui-4-completed.png")

    events = served.stack.adapters.change_log.events(TICKET)
    approvals = {(e.payload["role"], e.payload["person_id"]) for e in events
                 if e.type == "approval_recorded"}
    assert approvals == {("engineering_lead", review.to), ("qa", sign_off.to)}
    (refused,) = [e for e in events if e.type == "approval_attempt_failed"]
    assert refused.payload["role"] == "qa" and refused.payload["claimed"] == sign_off.to
    assert [e.type for e in events][-4:] == ["deployment_succeeded", "verification_passed",
                                              "change_closed", "notice_delivered"]
    assert mailed_kind(served, "closed") == [email_of(served, "alice")]  # the author


def mailed_kind(served: Served, kind: str) -> list[str]:
    """To whom changeflow mailed notices of `kind`."""
    return [parseaddr(str(m["To"]))[1] for m in mail_messages(served.mail)
            if m["X-Changeflow-Kind"] == kind]


def email_of(served: Served, person: str) -> str:
    found = served.stack.adapters.config.roster.get(person)
    assert found is not None and found.email
    return found.email


def _settled(run_id: str) -> bool:
    return flow_run(run_id).state_type in (StateType.COMPLETED, StateType.PAUSED)


def _refused(served: Served) -> bool:
    return any(e.type == "approval_attempt_failed"
               for e in served.stack.adapters.change_log.events(TICKET))
