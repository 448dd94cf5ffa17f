"""Under faults the control fails closed, bounded in time, and resumes without repeating.

- The change log's database refuses writes just before deployment (PostgreSQL switched
  to read-only, its connections cut; SQLite query-only): the deploy command never runs,
  the run fails with an error naming the change log, and once writes are allowed again
  the next run deploys exactly once.
- A deploy command that never exits, a smoke check that never answers and a rollback
  that never exits are each cut off at the catalog's timeout and recorded as such, and
  each ends in the policy's escalation: a rollback and a P3 incident, or, when the
  rollback itself fails, a P1 incident paging the rollback owner and on-call.
- The code host is down when the gates are judged: once the retries are spent the change
  is blocked, with a reason naming the code host, and nothing deploys; when it is back,
  the next run passes the gates and deploys once, nobody asked again.
- The notifier cannot deliver approval codes: the run stops with the request open,
  each failed delivery recorded and the CISO told; nothing is approved or rejected. Once
  it delivers again, the next run sends the codes again and the change completes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml

import tasks.tickets
from changeflow.approver import ScriptedApprover
from changeflow.stack import Stack, embedded_stack
from config.loader import load_config
from domain.events import NewEvent
from domain.models import ChangeEvent
from flows.change_request import change_request
from integrations.chain_keys import ChainKeys
from integrations.changelog_sql import SqlChangeLog
from integrations.factory import change_log_url
from integrations.outbox import read_outbox
from integrations.ports import ChangeLogUnavailable
from tasks.common import ChangeStopped
from tests.fakes.github_server import FakeGitHub
from tests.flows.test_code_host import link, reviewed_pull
from tests.support.postgres import PostgresServer
from tests.support.processes import processes_mentioning

KEY, VERSION, BROKEN_KEY = "CHG-101", "1.1.0", "CHG-103"
NEVER = 3600.0
"""Seconds a hanging command or answer would take: far beyond every timeout used here."""


# -- reading what happened ---------------------------------------------------------------

def events(stack: Stack, key: str = KEY, *types: str) -> list[ChangeEvent]:
    found = stack.adapters.change_log.events(key)
    return [e for e in found if not types or e.type in types]


def deploy_intents(stack: Stack, key: str = KEY) -> int:
    return sum(1 for e in events(stack, key, "effect_started")
               if e.payload["action"] == "deploy-production")


def production_deploys(stack: Stack, version: str = VERSION) -> int:
    """Production deploys of `version` in the deployer's own record."""
    history = stack.settings.var_dir / "sample" / "history.jsonl"
    deploys = [json.loads(line) for line in history.read_text().splitlines()]
    return sum(1 for d in deploys if (d["environment"], d["version"]) == ("production", version))


def effect_outcome(stack: Stack, key: str, action: str) -> dict[str, Any]:
    """The recorded result of the last `action` command."""
    started = [e for e in events(stack, key, "effect_started") if e.payload["action"] == action]
    effect = started[-1].payload["effect_id"]
    (finished,) = [e for e in events(stack, key, "effect_finished")
                   if e.payload["effect_id"] == effect]
    return dict(finished.payload["result"])


def approvals_recorded(stack: Stack, key: str = KEY) -> list[tuple[str, str]]:
    return [(e.payload["role"], e.payload["purpose"])
            for e in events(stack, key, "approval_recorded")]


# -- arranging faults --------------------------------------------------------------------

class HookedChangeLog(SqlChangeLog):
    """A change log that runs `action` once, right after a matching event is committed."""

    def __init__(self, url: str, keys: ChainKeys, event_type: str, fields: dict[str, str],
                 action: Callable[[], object]) -> None:
        super().__init__(url, keys=keys)
        self.event_type = event_type
        self.fields = fields
        self.action: Callable[[], object] | None = action

    def append_many(self, new: Sequence[NewEvent]) -> list[ChangeEvent]:
        written = super().append_many(new)
        if self.action is not None and any(
                e.type == self.event_type and all(str(e.payload.get(k)) == v
                                                  for k, v in self.fields.items())
                for e in written):
            action, self.action = self.action, None
            action()
        return written


def after_recorded(stack: Stack, event_type: str, action: Callable[[], object],
                   **fields: str) -> None:
    """Run `action` right after the stack's change log records `event_type` (once)."""
    hooked = HookedChangeLog(change_log_url(stack.settings), stack.adapters.change_log.keys,
                             event_type, fields, action)
    stack.adapters.change_log.close()
    stack.adapters.change_log = hooked


def edit_production(stack: Stack, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change the sample service's production entry in the catalog, and reload it."""
    path = stack.settings.config_dir / "services.yaml"
    catalog = yaml.safe_load(path.read_text())
    edit(catalog["services"]["sample"]["environments"]["production"])
    path.write_text(yaml.safe_dump(catalog))
    stack.adapters.config = load_config(stack.settings.config_dir)


def edit_ticket(stack: Stack, key: str, **fields: Any) -> None:
    path = stack.settings.resolved_tickets_dir / f"{key}.yaml"
    ticket = yaml.safe_load(path.read_text())
    ticket.update(fields)
    path.write_text(yaml.safe_dump(ticket, sort_keys=False))


# -- 1. the change log refuses writes ----------------------------------------------------

WriteSwitch = Callable[[bool], None]
"""Makes the change log's database refuse writes (True) or take them again (False)."""


def sqlite_switch(stack: Stack) -> WriteSwitch:
    """New connections are query-only while refusing; the pool is emptied both ways."""
    def query_only(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA query_only = ON")

    def switch(refuse: bool) -> None:
        engine = stack.adapters.change_log.engine
        if refuse:
            sa.event.listen(engine, "connect", query_only)
        else:
            sa.event.remove(engine, "connect", query_only)
        engine.dispose()

    return switch


def postgres_switch(postgres: PostgresServer, url: str) -> WriteSwitch:
    """The database turned read-only, as a failed-over or full server is, and every
    session on it cut, so that the change log's pool reconnects to a read-only database."""
    database = sa.make_url(url).database

    def switch(refuse: bool) -> None:
        with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=postgres "
                             "dbname=postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only '
                          f'= {"on" if refuse else "off"}')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (database,))

    return switch


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def refusing(request: pytest.FixtureRequest,
             tmp_path: Path) -> Iterator[tuple[Stack, WriteSwitch]]:
    """A stack whose change log can be made to refuse writes, on SQLite and PostgreSQL."""
    settings: dict[str, Any] = {"approval_poll_seconds": 0.2}
    postgres: PostgresServer | None = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
        settings["database_url"] = postgres.create_database()
    with embedded_stack(tmp_path, port=0, **settings) as stack:
        switch = (sqlite_switch(stack) if postgres is None
                  else postgres_switch(postgres, settings["database_url"]))
        yield stack, switch


def test_a_change_log_refusing_writes_stops_the_deploy_before_it_runs(
        refusing: tuple[Stack, WriteSwitch]) -> None:
    stack, refuse_writes = refusing
    after_recorded(stack, "availability_confirmed", lambda: refuse_writes(True),
                   role="reviewer")  # the last step before deploying
    with ScriptedApprover(stack.outbox).start(interval=0.1):
        with pytest.raises(ChangeLogUnavailable,
                           match="the change log could not record deployment_started for CHG-101"):
            change_request(KEY)
        assert deploy_intents(stack) == 0 and production_deploys(stack) == 0
        refuse_writes(False)
        record = stack.adapters.change_log.record(KEY)
        assert record is not None and record.state == "scheduled"
        assert events(stack)[-1].type == "availability_confirmed"

        assert change_request(KEY)["outcome"] == "succeeded"

    assert deploy_intents(stack) == 1 and production_deploys(stack) == 1
    assert sorted(approvals_recorded(stack)) == [("engineering_lead", "review"),
                                                 ("qa", "staging-sign-off")]
    assert stack.adapters.change_log.verify().ok


# -- 2. commands and checks that never end ----------------------------------------------

def test_a_deploy_that_never_exits_is_killed_at_its_timeout_and_rolled_back(
        stack: Stack, approver: ScriptedApprover) -> None:
    def hang_after_switching(production: dict[str, Any]) -> None:
        production["deploy"]["argv"] += ["--settle-seconds", str(NEVER)]
        production["deploy"]["timeout_seconds"] = 1

    edit_production(stack, hang_after_switching)
    result = change_request(KEY)

    assert (result["outcome"], result["incidents"]) == ("rolled_back", [f"INC-{KEY}-1"])
    (failed,) = events(stack, KEY, "deployment_failed")
    assert (failed.payload["timed_out"], failed.payload["exit_code"]) == (True, None)
    deployed = effect_outcome(stack, KEY, "deploy-production")
    assert deployed["timed_out"] is True and 1 <= deployed["seconds"] < NEVER
    assert not processes_mentioning(str(stack.settings.var_dir), "--settle-seconds")
    assert [e.type for e in events(stack, KEY, "rollback_started", "rollback_succeeded")] == [
        "rollback_started", "rollback_succeeded"]
    (incident,) = events(stack, KEY, "incident_opened")
    assert incident.payload["priority"] == 3
    assert production_deploys(stack) == 1 and production_deploys(stack, "1.0.0") == 2


class HangingWhileLive(ThreadingHTTPServer):
    """Accepts, and never answers while production runs `version`; else answers 200."""

    daemon_threads = True

    def __init__(self, state_dir: Path, version: str) -> None:
        self.state_dir, self.version = state_dir, version
        self.released = threading.Event()
        self.hung = 0
        super().__init__(("127.0.0.1", 0), _HangingHandler)

    def live(self) -> str:
        return str(json.loads((self.state_dir / "production.json").read_text())["version"])


class _HangingHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, HangingWhileLive)
        if server.live() == server.version:
            server.hung += 1
            server.released.wait(NEVER)
            return
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hanging(stack: Stack) -> Iterator[HangingWhileLive]:
    server = HangingWhileLive(stack.settings.var_dir / "sample", VERSION)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_smoke_check_that_never_answers_fails_at_its_timeout_and_rolls_back(
        stack: Stack, approver: ScriptedApprover, hanging: HangingWhileLive) -> None:
    url = f"http://127.0.0.1:{hanging.server_address[1]}/orders"
    edit_production(stack, lambda production: production["smoke_checks"].append(
        {"name": "orders", "url": url, "timeout_seconds": 1}))
    result = change_request(KEY)

    assert (result["outcome"], result["incidents"]) == ("rolled_back", [f"INC-{KEY}-1"])
    (failed,) = events(stack, KEY, "verification_failed")
    (orders,) = [c for c in failed.payload["checks"] if c["name"] == "orders"]
    assert orders["passed"] is False and orders["status_code"] is None
    assert orders["detail"] == "timed out after 1 s waiting for the answer"
    assert 1 <= orders["duration_seconds"] < NEVER
    assert hanging.hung == 1  # asked once, not retried into a longer wait
    (rolled,) = events(stack, KEY, "rollback_succeeded")
    assert all(c["passed"] for c in rolled.payload["checks"])  # the old version answers
    (incident,) = events(stack, KEY, "incident_opened")
    assert incident.payload["priority"] == 3
    told = [n for n in read_outbox(stack.outbox) if n["kind"] == "incident"]
    assert [n["to"] for n in told] == ["alice"]  # CHG-101's rollback owner


def test_a_rollback_that_never_exits_is_a_p1_paging_owner_and_on_call(
        stack: Stack, approver: ScriptedApprover) -> None:
    def hang_rolling_back(production: dict[str, Any]) -> None:
        production["rollback"] = {"argv": ["{python}", "-c", f"import time; time.sleep({NEVER})",
                                           "{var_dir}"], "timeout_seconds": 1}

    edit_production(stack, hang_rolling_back)
    ticket = yaml.safe_load((stack.settings.resolved_tickets_dir / f"{BROKEN_KEY}.yaml")
                            .read_text())
    edit_ticket(stack, BROKEN_KEY, rollback_plan={**ticket["rollback_plan"], "owner": "bob"})
    result = change_request(BROKEN_KEY)  # its version answers 500 in production

    assert (result["outcome"], result["incidents"]) == ("failed", [f"INC-{BROKEN_KEY}-1"])
    rolled = effect_outcome(stack, BROKEN_KEY, "rollback-production")
    assert rolled["timed_out"] is True and rolled["exit_code"] is None
    assert 1 <= rolled["seconds"] < NEVER
    (failed,) = events(stack, BROKEN_KEY, "rollback_failed")
    assert failed.payload["exit_code"] is None and failed.payload["checks"] == []
    (incident,) = events(stack, BROKEN_KEY, "incident_opened")
    assert incident.payload["priority"] == 1
    pages = {n["to"] for n in read_outbox(stack.outbox) if n["kind"] == "page"}
    assert pages == {"bob", "oscar"}  # the rollback owner and on-call
    assert not processes_mentioning(str(stack.settings.var_dir), "time.sleep")


# -- 3. outside systems down ---------------------------------------------------------------

def test_the_code_host_down_at_the_gates_blocks_and_a_later_run_deploys_once(
        github_stack: Stack, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = github_stack
    monkeypatch.setattr(tasks.tickets, "BACKOFF_SECONDS", (0.05,) * tasks.tickets.RETRIES)
    number, _ = reviewed_pull(github)
    link(stack, number)
    attempts = tasks.tickets.RETRIES + 1

    def go_down() -> None:
        github.clear_requests()
        github.fail(r"/check-runs$", 503, times=attempts)

    after_recorded(stack, "approval_recorded", go_down, purpose="staging-sign-off")
    with ScriptedApprover(stack.outbox).start(interval=0.1):
        with pytest.raises(ChangeStopped, match="blocked by gates: .*cannot read the code host"):
            change_request(KEY)
        assert github.count("GET", r"/check-runs$") == attempts  # every retry, then no more
        (blocked,) = events(stack, KEY, "gates_blocked")
        unknown = [g for g in blocked.payload["gates"] if g["status"] == "unknown"]
        assert unknown and all("cannot read the code host" in g["reason"] and "503" in g["reason"]
                               for g in unknown)
        assert "cannot read the code host" in stack.adapters.tickets.comments(KEY)[-1]
        assert deploy_intents(stack) == 0 and production_deploys(stack) == 0
        blocked_at = blocked.seq

        assert change_request(KEY)["outcome"] == "succeeded"  # the host answers again

    assert deploy_intents(stack) == 1 and production_deploys(stack) == 1
    assert sorted(approvals_recorded(stack)) == [("engineering_lead", "review"),
                                                 ("qa", "staging-sign-off")]
    asked_again = [e.payload["purpose"] for e in events(stack, KEY, "approval_requested")
                   if e.seq > blocked_at and e.payload["purpose"] != "availability"]
    assert asked_again == []


def test_codes_that_reach_nobody_stop_the_run_and_the_next_run_sends_them_again(
        tmp_path: Path) -> None:
    with embedded_stack(tmp_path, port=0, approval_poll_seconds=0.2,
                        approval_timeout_hours=30 / 3600) as stack:
        stack.outbox.parent.mkdir(parents=True, exist_ok=True)
        stack.outbox.mkdir()  # where the outbox file should be: nothing can be appended
        with ScriptedApprover(stack.outbox).start(interval=0.1):
            with pytest.raises(ChangeStopped, match="no code for the review decision as "
                               "engineering_lead could be delivered .*the request stays open"):
                change_request(KEY)
            types = {e.type for e in events(stack)}
            assert "approval_recorded" not in types and "change_rejected" not in types
            requested = events(stack, KEY, "approval_requested")[-1].payload
            assert requested["digests"] == {} and requested["unreached"] == ["erin"]
            failed = events(stack, KEY, "notice_failed")
            assert {(e.payload["to"], e.payload["kind"]) for e in failed} >= {
                ("erin", "approval-code"), ("carol", "codes-undelivered")}
            assert all(str(stack.outbox) in e.payload["reason"] for e in failed)
            stack.outbox.rmdir()

            assert change_request(KEY)["outcome"] == "succeeded"

        assert deploy_intents(stack) == 1 and production_deploys(stack) == 1
        assert sorted(approvals_recorded(stack)) == [("engineering_lead", "review"),
                                                     ("qa", "staging-sign-off")]
        asked_again = events(stack, KEY, "approval_requested")[1].payload
        assert asked_again["unreached"] == [] and list(asked_again["digests"]) == ["erin"]
