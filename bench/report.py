"""Quarterly-report benchmark: a synthetic quarter of 100,000 changes.

The issue's goal: the whole report within 2x of the time to load the same events into
pandas alone, measured in the same run, and under 2 GiB.

1. **The change log.** A fresh SQLite change log (in a temporary folder) gets 100,000
   changes in 2026Q4 (Europe/Berlin), written with `append_many` in batches of 5,000
   events, in time order (so a batch holds events of many changes, as a live log
   would). Every event passes the change log's state machine; event types and payloads
   are the ones the flows record (see `tests/integrations/test_quarterly_report.py`):
   - normal changes that succeed (69 %): submitted; review requested and recorded;
     approval granted; staging started and passed; QA sign-off requested and recorded;
     the six gates passed; scheduled a day or more ahead; deployment started and
     succeeded in a maintenance window; verification passed; closed. 1 % more are
     told less than 24 hours ahead (a "notice given" exception);
   - normal changes rolled back (5 %): verification failed, rollback started and
     succeeded, an incident opened (9 in 10; reviewed later for 7 in 10), closed;
   - standard changes (15 %): a procedure's change, self-approved, the procedure's
     gates;
   - emergencies (3 %): a verbal approval recorded by the author, its confirmation
     obligation, code review and staging bypassed, deployed at once (any time), then
     documentation, post-hoc review and CISO sign-off opened and answered;
   - rejected in review (7 %): never deployed.
   About 13 events per change on average (1.3 million events at 100,000 changes). The
   build is timed but is not part of the goal.
2. **Baseline: the pandas load alone**, `change_frames` (what
   `build_report` reads), best of 3, on a freshly opened log.
3. **The report.** `build_report` on those frames; then the whole chain: the real
   `tasks.reporting.produce_report`, in a fresh process of its own, each stage timed
   through a wrapper around the function it calls: `load_quarter` (with hashes),
   `verify`, `build_report`, `write_report` (HTML, CSVs, XLSX, chain.json, timed apart
   the same way) and the evidence pack (`change_evidence`, `write_evidence_pack`).
   `verify` checks the whole log (not only the quarter) on every core and has a goal of
   its own (3x sha256), so ratios are given with and without it.
4. **Memory.** The report process's peak RSS (VmHWM) per stage, reset before each
   stage through `/proc/self/clear_refs`: the goal is judged on the largest. A process
   of its own, because freed memory is not given back to the system, so the
   benchmark's earlier steps would count. `verify`'s worker process is not counted (it
   streams rows). Beside it,
   the tracemalloc peak of what one more, untimed, `build_report` allocates on top of
   the frames (tracing the whole chain is possible but slow and doubles the RSS).
5. **Where `build_report`'s time goes**: one more run under cProfile, top functions by
   cumulative time (project code) and by own time (everything). Time in the cyclic
   garbage collector is measured apart (`gc.callbacks`) for `build_report` and for each
   stage: cProfile charges it to whichever function happened to allocate.

Environment: `BENCH_REPORT_CHANGES` (default 100000) scales the quarter down for a
quick run; `BENCH_REPORT_DB` names a SQLite file to build once and reuse on later runs
(nothing is cached by default); `BENCH_REPORT_PROFILE=0` skips the profile;
`BENCH_REPORT_TRACE` is `build` (default), `whole` (trace the whole chain once more: at
100,000 changes about 10 minutes and 10 GiB more) or `0` (no tracemalloc run).

Run alone with `.venv/bin/python -m bench.report`: about 7 minutes at 100,000 changes on
2 cores, 3 of them building the log (about 4 with `BENCH_REPORT_DB` reused).
"""

from __future__ import annotations

import contextlib
import cProfile
import gc
import heapq
import itertools
import json
import os
import pstats
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import reporting.evidence as evidence_module
import reporting.files as files_module
import tasks.reporting as reporting_tasks
from config.loader import Config, load_config
from config.settings import PROJECT_ROOT, Settings
from domain.emergency import confirmation_obligation, emergency_obligations
from domain.events import NewEvent
from domain.models import ChangeRequest, RollbackPlan
from domain.schedule import slot_allowed
from domain.standard import required_gates
from integrations.changelog_frames import change_frames
from integrations.changelog_sql import SqlChangeLog
from integrations.factory import Adapters
from reporting.model import Quarter
from reporting.quarterly import build_report
from tests.support.keys import TEST_KEYS

QUARTER = Quarter(2026, 4)
CHANGES = 100_000
BATCH = 5_000
"""Events per `append_many` call."""
SEED = 20264
GENERATOR = 1
"""Bumped when the synthetic log changes, so a reused `BENCH_REPORT_DB` is rebuilt."""
LOAD_RUNS = 3
GOAL_RATIO = 2.0
GOAL_PEAK_MIB = 2048.0
PROFILE_TOP = 25
NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
"""`generated_at`: after the quarter, when its report would be made."""

MIX = (("normal", 0.69), ("normal_short_notice", 0.01), ("rolled_back", 0.05),
       ("standard", 0.15), ("emergency", 0.03), ("rejected", 0.07))
SERVICES = ("accounts", "billing", "catalog", "checkout", "search", "inventory", "shipping",
            "notifications", "reporting", "gateway", "ledger", "pricing", "profiles",
            "recommendations", "reviews", "media", "scheduler", "exports", "imports",
            "webhooks", "audit", "sessions-ui", "admin-console", "status-page")
AUTHORS = ("alice", "bob", "oscar")
"""Engineers who author changes (not the engineering lead, who reviews them)."""
LEAD, QA, CISO = "erin", "quinn", "carol"
STANDARD = (("config_value_change", "config", ["config/app.yaml"]),
            ("dependency_update", "dependency", ["requirements.txt"]),
            ("certificate_renewal", "certificate", ["certs/service.pem"]))
GATE_REASONS = {
    "code_review": "2 approving reviews, 1 senior, none by the author",
    "automated_tests": "CI pipeline passed (412 tests)",
    "security_scan": "no critical or high findings",
    "staging_validation": "staging tests passed, signed off by QA",
    "rollback_plan": "rollback plan complete: trigger, steps, owner, verification, estimate",
    "approval": "the category's approvals are recorded",
}
WORDS = ("adds retries to the upstream client", "raises the connection pool size",
         "moves the nightly job to the new queue", "fixes the rounding of totals",
         "drops the unused index", "logs the request id on every error",
         "upgrades the HTTP library", "renames the feature flag",
         "tightens the input validation", "caches the tariff table for five minutes")
MINUTE = timedelta(minutes=1)

Event = tuple[datetime, int, NewEvent]


# --- the synthetic change log ------------------------------------------------------------

class _Story:
    """One change's events, each after the one before (times never go back)."""

    def __init__(self, cid: str, at: datetime) -> None:
        self.cid, self.at = cid, at
        self.events: list[NewEvent] = []

    def add(self, type_: str, actor: str = "changeflow", *, at: datetime | None = None,
            after: timedelta = MINUTE, **payload: Any) -> _Story:
        self.at = max(self.at, at) if at is not None else self.at + after
        self.events.append(NewEvent(self.cid, type_, actor, payload, self.at))
        return self


class _World:
    """What the stories draw from: the policy, the slots, request templates, a seeded RNG."""

    def __init__(self, config: Config, seed: int) -> None:
        self.config, self.policy = config, config.policy
        self.rng = random.Random(seed)
        self.zone = self.policy.schedule.zone
        self.start, self.end = QUARTER.bounds(self.zone)
        self.slots = self._window_slots()
        self.templates: dict[str, dict[str, Any]] = {}
        self.gates: dict[str, list[str]] = {}
        for key, category, extra in self._variants():
            request = ChangeRequest(
                id="CHG-0", summary="s", description="d", scope="the service named",
                risk_assessment="low: behind a flag, rolled back in minutes",
                testing_plan="unit and integration tests in CI, smoke tests in staging",
                rollback_plan=RollbackPlan(trigger="error rate above 2 % for 5 minutes",
                                           steps="deploy the previous version",
                                           owner="alice", verification="smoke checks pass",
                                           time_estimate_minutes=10),
                category=category, service="billing", version="1.0.1", author="alice",
                **extra)
            self.templates[key] = request.model_dump(mode="json")
            self.gates[key] = required_gates(request, self.policy)

    @staticmethod
    def _variants() -> list[tuple[str, str, dict[str, Any]]]:
        found: list[tuple[str, str, dict[str, Any]]] = [
            ("normal", "normal", {"changed_paths": ["src/service/handlers.py"]}),
            ("emergency", "emergency", {"emergency_trigger": "p1_incident",
                                        "incident_ref": "INC-0"})]
        found += [(procedure, "standard", {"standard_procedure": procedure, "change_kind": kind,
                                           "changed_paths": paths})
                  for procedure, kind, paths in STANDARD]
        return found

    def _window_slots(self) -> list[datetime]:
        """Every 10-minute start in the quarter that the schedule allows (notice aside)."""
        schedule = self.policy.schedule.model_copy(update={"notice_hours": 0})
        slots, at = [], self.start
        while at < self.end:
            if not slot_allowed(at, schedule, notified_at=None):
                slots.append(at)
            at += timedelta(minutes=10)
        return slots

    def hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def slot(self) -> datetime:
        """A deployment start inside a maintenance window."""
        return self.rng.choice(self.slots) + timedelta(seconds=self.rng.randrange(540))

    def any_time(self) -> datetime:
        """An instant anywhere in the quarter's first 91 days."""
        return self.start + timedelta(seconds=self.rng.randrange(91 * 86400))

    def office_hours(self, at: datetime) -> datetime:
        """`at` moved to 08:00-17:00 local on its day, keeping the minutes random."""
        local = at.astimezone(self.zone)
        opened = datetime.combine(local.date(), wall_time(8), self.zone)
        return (opened + timedelta(seconds=self.rng.randrange(9 * 3600))).astimezone(UTC)


def _request(world: _World, key: str, cid: str, author: str) -> dict[str, Any]:
    rng = world.rng
    service = rng.choice(SERVICES)
    major, minor, patch = rng.randrange(1, 6), rng.randrange(40), rng.randrange(1, 30)
    what = rng.choice(WORDS)
    return {**world.templates[key], "id": cid, "service": service,
            "version": f"{major}.{minor}.{patch}", "author": author,
            "summary": f"{service}: {what}",
            "description": (f"{service.capitalize()} {what}. Requested after the last "
                            f"incident review; the change is small and behind a flag. "
                            f"Ticket {cid}, owner {author}."),
            "rollback_plan": {**world.templates[key]["rollback_plan"], "owner": author}}


def _submit(world: _World, cid: str, at: datetime, key: str, category: str,
            author: str, **extra: Any) -> tuple[_Story, dict[str, Any]]:
    request = {**_request(world, key, cid, author), **extra}
    story = _Story(cid, at).add(
        "change_submitted", author, at=at, summary=request["summary"],
        description=request["description"], category=category, service=request["service"],
        version=request["version"], author=author, watchers=[author],
        change=request)
    return story, request


def _ask(world: _World, story: _Story, role: str, purpose: str,
         eligible: list[str]) -> str:
    run_id = str(uuid.UUID(int=world.rng.getrandbits(128)))
    story.add("approval_requested", role=role, purpose=purpose, run_id=run_id,
              salt=world.hex(128), digests={p: world.hex(256) for p in eligible},
              eligible=eligible, expires_at=(story.at + timedelta(hours=72)).isoformat())
    return run_id


def _decide(world: _World, story: _Story, role: str, person: str, purpose: str, run_id: str,
            decision: str = "approve", comment: str = "") -> None:
    story.add("approval_recorded", person, after=timedelta(
        seconds=world.rng.randrange(600, 4 * 3600)), role=role, purpose=purpose,
        person_id=person, decision=decision, channel="prefect-ui", comment=comment,
        run_id=run_id)


def _gates(story: _Story, names: list[str], bypassed: tuple[str, ...] = ()) -> None:
    for gate in bypassed:
        story.add("gate_bypassed", gate=gate, reason="bypassed under the emergency process",
                  category="emergency")
    story.add("gates_passed", gates=[
        {"gate": g, "status": "bypassed" if g in bypassed else "passed",
         "reason": "bypassed under the emergency process" if g in bypassed
         else GATE_REASONS[g]} for g in names])


def _deploy(world: _World, story: _Story, request: dict[str, Any], slot: datetime,
            told: list[str], immediate: bool = False) -> None:
    author, version = request["author"], request["version"]
    major, minor, patch = version.split(".")
    story.add("deployment_scheduled", slot=slot.isoformat(), notified=told,
              notified_at=story.at.isoformat(), immediate=immediate)
    story.add("deployment_started", author, at=slot, environment="production",
              version=version, previous_version=f"{major}.{minor}.{int(patch) - 1}")
    story.add("deployment_succeeded", after=timedelta(seconds=world.rng.randrange(120, 900)),
              version=version, exit_code=0, timed_out=False)


def _checks(service: str, passed: bool) -> list[dict[str, Any]]:
    return [{"name": name, "url": f"https://{service}.internal/{name}", "passed": passed,
             "status_code": 200 if passed else 503, "detail": "ok" if passed else "503",
             "duration_seconds": 0.12} for name in ("health", "smoke")]


def _plan(world: _World, kind: str) -> tuple[datetime, datetime | None]:
    """When a change of `kind` is submitted, and its deployment slot (None: not windowed)."""
    rng = world.rng
    if kind == "emergency":
        return world.any_time(), None
    if kind == "rejected":
        return world.office_hours(world.any_time()), None
    slot = world.slot()
    if kind == "normal_short_notice":
        ahead = rng.uniform(11, 14)  # the approvals take at most 9 h: told < 24 h ahead
    elif kind == "standard":
        ahead = rng.uniform(30, 96)
    else:
        ahead = rng.uniform(36, 120)  # told at least 27 h ahead
    return slot - timedelta(hours=ahead), slot


def _normal(world: _World, cid: str, submitted: datetime, slot: datetime,
            rolled_back: bool) -> _Story:
    rng = world.rng
    author = rng.choice(AUTHORS)
    story, request = _submit(world, cid, submitted, "normal", "normal", author)
    run = _ask(world, story, "engineering_lead", "review", [LEAD])
    _decide(world, story, "engineering_lead", LEAD, "review", run)
    story.add("approval_granted", approvers={"engineering_lead": LEAD})
    story.add("staging_started", after=2 * MINUTE, version=request["version"])
    story.add("staging_passed", after=timedelta(minutes=rng.randrange(8, 25)), results=[
        {"name": "deploy", "ok": True, "exit_code": 0, "output": "deployed"},
        {"name": "staging-health", "ok": True, "exit_code": 0, "output": "200 OK"}])
    run = _ask(world, story, "qa", "staging-sign-off", [QA])
    _decide(world, story, "qa", QA, "staging-sign-off", run, comment="staging tests reviewed")
    _gates(story, world.gates["normal"])
    _deploy(world, story, request, slot, [author, LEAD, QA])
    if not rolled_back:
        story.add("verification_passed", after=3 * MINUTE,
                  checks=_checks(request["service"], True))
        return story.add("change_closed", outcome="succeeded")
    story.add("verification_failed", after=3 * MINUTE, checks=_checks(request["service"], False))
    story.add("rollback_started", to_version="previous", reason="verification failed")
    minutes = round(rng.uniform(2, 14), 1)
    story.add("rollback_succeeded", after=timedelta(minutes=minutes), to_version="previous",
              minutes=minutes, estimate_minutes=10)
    if rng.random() < 0.1:  # rolled back without an incident: a control exception
        return story.add("change_closed", outcome="rolled_back")
    story.add("incident_opened", incident_id=f"INC-{cid}-1", priority=3,
              summary=f"{cid} rolled back after a failed verification",
              review_due=(story.at + timedelta(days=7)).isoformat(), linked_change=cid)
    story.add("change_closed", outcome="rolled_back")
    if rng.random() < 0.7:
        story.add("incident_reviewed", LEAD, after=timedelta(days=rng.uniform(1, 6)),
                  incident_id=f"INC-{cid}-1", reviewer=LEAD, notes="cause found")
    return story


def _standard(world: _World, cid: str, submitted: datetime, slot: datetime) -> _Story:
    rng = world.rng
    author = rng.choice(AUTHORS)
    key = rng.choice(STANDARD)[0]
    story, request = _submit(world, cid, submitted, key, "standard", author)
    run = _ask(world, story, "engineer", "self-approval", [author])
    _decide(world, story, "engineer", author, "self-approval", run)
    story.add("approval_granted", approvers={"engineer": author})
    _gates(story, world.gates[key])
    _deploy(world, story, request, slot, [author])
    story.add("verification_passed", after=3 * MINUTE, checks=_checks(request["service"], True))
    return story.add("change_closed", outcome="succeeded")


def _emergency(world: _World, cid: str, submitted: datetime) -> _Story:
    rng = world.rng
    author = rng.choice(AUTHORS)
    trigger = "p1_incident" if rng.random() < 0.7 else "exploited_critical_vulnerability"
    story, request = _submit(world, cid, submitted, "emergency", "emergency", author,
                             emergency_trigger=trigger, incident_ref=f"INC-{cid}")
    story.add("approval_recorded", author, after=timedelta(minutes=rng.randrange(3, 20)),
              role="ciso", requested_role="ciso", purpose="verbal-approval", person_id=CISO,
              decision="approve", channel="verbal", via="phone",
              given_at=(story.at - MINUTE).isoformat(), recorded_by=author,
              fallback_reason=None, comment="approved on the incident bridge")
    confirm = confirmation_obligation(story.at, "ciso", world.policy)
    story.add("obligation_opened", obligation="approval_confirmation",
              due=confirm.due.isoformat(), owner_role="ciso", owners=[CISO])
    story.add("approval_granted", approvers={"ciso": CISO})
    _gates(story, world.gates["emergency"], ("code_review", "staging_validation"))
    _deploy(world, story, request, story.at + 2 * MINUTE, [author, CISO], immediate=True)
    deployed = story.events[-2].at  # deployment_started
    story.add("verification_passed", after=3 * MINUTE, checks=_checks(request["service"], True))
    owners = {"engineer": author, "engineering_lead": LEAD, "ciso": CISO}
    due = {"approval_confirmation": confirm.due}
    for obligation in emergency_obligations(deployed, world.policy):
        due[obligation.kind] = obligation.due
        story.add("obligation_opened", obligation=obligation.kind,
                  due=obligation.due.isoformat(), owner_role=obligation.owner_role,
                  owners=[owners.get(obligation.owner_role, author)])
    story.add("change_closed", outcome="succeeded")
    who = {"approval_confirmation": CISO, "documentation": author, "post_hoc_review": LEAD,
           "ciso_signoff": CISO}
    for kind in ("approval_confirmation", "documentation", "post_hoc_review", "ciso_signoff"):
        late = rng.random() < 0.1  # most are answered in time, a few late
        answered = (due[kind] + timedelta(hours=rng.uniform(1, 30)) if late
                    else due[kind] - timedelta(minutes=rng.randrange(10, 600)))
        story.add("obligation_responded", who[kind], at=answered, purpose=kind,
                  person_id=who[kind], decision="approve", role=kind, comment="done")
    return story


def _rejected(world: _World, cid: str, submitted: datetime) -> _Story:
    author = world.rng.choice(AUTHORS)
    story, _ = _submit(world, cid, submitted, "normal", "normal", author)
    run = _ask(world, story, "engineering_lead", "review", [LEAD])
    _decide(world, story, "engineering_lead", LEAD, "review", run, decision="decline",
            comment="needs a migration plan")
    story.add("change_rejected", step="review",
              reasons=[f"{LEAD} declined as engineering_lead: needs a migration plan"])
    return story.add("change_closed", outcome="rejected")


def _story(world: _World, kind: str, cid: str, submitted: datetime,
           slot: datetime | None) -> _Story:
    if kind == "emergency":
        return _emergency(world, cid, submitted)
    if kind == "rejected":
        return _rejected(world, cid, submitted)
    assert slot is not None
    if kind == "standard":
        return _standard(world, cid, submitted, slot)
    return _normal(world, cid, submitted, slot, rolled_back=kind == "rolled_back")


def build_log(log: SqlChangeLog, changes: int, config: Config, seed: int = SEED,
              batch: int = BATCH) -> dict[str, Any]:
    """Write `changes` synthetic changes into `log`, all events in time order.

    Every change is planned first (its kind, submission and slot); then, in order of
    submission, each change's events are made and wait in a heap ordered by time, and go
    out in batches of `batch` through `append_many`. A batch thus holds the events of
    every change active at that moment, and only the changes in flight are in memory.
    """
    world = _World(config, seed)
    names, weights = zip(*MIX, strict=True)
    kinds = world.rng.choices(names, weights=weights, k=changes)
    plans = sorted((submitted, i, slot, kind) for i, kind in enumerate(kinds, start=1)
                   for submitted, slot in [_plan(world, kind)])
    heap: list[Event] = []
    order = itertools.count()
    pending: list[NewEvent] = []
    appended = 0
    started = time.perf_counter()

    def flush(until: datetime | None) -> None:
        nonlocal appended
        while heap and (until is None or heap[0][0] <= until):
            pending.append(heapq.heappop(heap)[2])
            if len(pending) >= batch:
                log.append_many(pending)
                appended += len(pending)
                pending.clear()

    for submitted, i, slot, kind in plans:
        flush(submitted)
        for event in _story(world, kind, f"CHG-{i:06d}", submitted, slot).events:
            heapq.heappush(heap, (event.at, next(order), event))
    flush(None)
    if pending:
        log.append_many(pending)
        appended += len(pending)
    seconds = time.perf_counter() - started
    return {"changes": changes, "events": appended,
            "events_per_change": round(appended / changes, 2), "mix": dict(Counter(kinds)),
            "batch_events": batch, "build_s": round(seconds, 1),
            "events_per_s": round(appended / seconds)}


# --- memory and timing helpers -----------------------------------------------------------

def status_mib(field: str = "VmRSS") -> float:
    """A `/proc/self/status` memory field, in MiB (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def reset_peak_rss() -> bool:
    """Start the process's VmHWM again from its current RSS (Linux); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class GcMeter:
    """Time spent in the cyclic garbage collector, and full collections, while inside.

    cProfile charges a collection to whichever allocation triggered it, so a profile
    does not show it as such; with millions of parsed payloads alive it is a large part
    of the time.
    """

    def __init__(self) -> None:
        self.seconds, self.full = 0.0, 0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.full += info.get("generation") == 2

    def __enter__(self) -> GcMeter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


class Stages:
    """Wall time, time in the garbage collector and peak RSS of named stages, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.gc_s: dict[str, float] = {}
        self.peak_rss_mib: dict[str, float] = {}
        self.traced_peak_mib: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        reset_peak_rss()
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
        started = time.perf_counter()
        try:
            with GcMeter() as meter:
                yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 3)
            self.gc_s[name] = round(meter.seconds, 3)
            self.peak_rss_mib[name] = status_mib("VmHWM")
            if tracemalloc.is_tracing():
                self.traced_peak_mib[name] = round(tracemalloc.get_traced_memory()[1] / 2**20,
                                                   1)


@contextlib.contextmanager
def timing(module: ModuleType, name: str, spent: list[tuple[str, float]],
           label: Callable[..., str] | None = None) -> Iterator[None]:
    """Time every call of `module.name` while inside, appending (label, seconds) to `spent`."""
    original = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append((label(*args) if label else name, time.perf_counter() - started))

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextlib.contextmanager
def replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    """`owner.name` is `value` while inside."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _adapters(log: SqlChangeLog, config: Config, var_dir: Path | None = None) -> Adapters:
    """What the report reads of the adapters: the config, the change log and settings.

    The settings say where the configuration files and anchors the evidence pack holds are.
    """
    settings = Settings(config_dir=PROJECT_ROOT / "config",
                        var_dir=var_dir or Path(tempfile.gettempdir()))
    return cast(Adapters, SimpleNamespace(config=config, change_log=log, settings=settings))


# --- the measurements --------------------------------------------------------------------

def pandas_load(log: SqlChangeLog, start: datetime, end: datetime,
                runs: int = LOAD_RUNS) -> tuple[dict[str, Any], Any, Any]:
    """Best of `runs` loads of records and events (no hashes): figures, and the frames."""
    times, records, events, first_peak = [], None, None, 0.0
    for _ in range(runs):
        records = events = None
        gc.collect()
        reset_peak_rss()
        started = time.perf_counter()
        records, events = change_frames(log, start, end)
        times.append(time.perf_counter() - started)
        first_peak = first_peak or status_mib("VmHWM")
    assert records is not None and events is not None
    memory = int(records.memory_usage(deep=True).sum() + events.memory_usage(deep=True).sum())
    return ({"best_s": round(min(times), 3), "runs_s": [round(t, 3) for t in times],
             "records": len(records), "events": len(events),
             "frames_mib": round(memory / 2**20, 1), "first_run_peak_rss_mib": first_peak},
            records, events)


STAGES = (("load_quarter", "load_quarter (hashes)"), ("build_report", "build_report"),
          ("write_report", "write_report"), ("change_evidence", "change_evidence"),
          ("write_evidence_pack", "write_evidence_pack"))
"""The functions `produce_report` calls (names in `tasks.reporting`), and their stages."""


def whole_chain(database: Path, out_dir: Path, traced: bool = False) -> dict[str, Any]:
    """The real `produce_report`, its stages timed through wrappers around what it calls.

    `verify` is timed on the change log; write_report's formats through wrappers around
    the functions it calls. Run it in a process of its own (`whole_chain_apart`): its
    peak RSS is then the report's, not what the benchmark's earlier steps left behind.
    """
    config = load_config(PROJECT_ROOT / "config")
    log = SqlChangeLog(f"sqlite:///{database}", keys=TEST_KEYS)
    a = _adapters(log, config, out_dir)
    stages = Stages()
    results: dict[str, Any] = {}

    def staged(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            with stages.stage(name):
                results[name] = call(*args, **kwargs)
            return results[name]
        return run

    spent: list[tuple[str, float]] = []
    packing: list[tuple[str, float]] = []
    with contextlib.ExitStack() as patches:
        for function, name in STAGES:
            patches.enter_context(replaced(reporting_tasks, function, staged(
                name, getattr(reporting_tasks, function))))
        patches.enter_context(replaced(log, "verify", staged("verify", log.verify)))
        for module, function, label in (
                (files_module, "render_html", lambda r: "html"),
                (files_module, "write_text", lambda p, t: f"write {p.suffix}"),
                (files_module, "_write_workbook", lambda t, p: "xlsx"),
                (files_module, "chain_json", lambda r: "chain.json")):
            patches.enter_context(timing(module, function, spent, label))
        patches.enter_context(timing(evidence_module, "render_html", packing,
                                     lambda r: "html"))
        gc.collect()
        rss_at_start = status_mib()
        if traced:
            tracemalloc.start()
        try:
            started = time.perf_counter()
            report, written = reporting_tasks.produce_report(a, QUARTER, out_dir)
            total = time.perf_counter() - started
        finally:
            log.close()
            if traced:
                tracemalloc.stop()
    by: dict[str, float] = {}
    for name, seconds in spent:
        by[name] = by.get(name, 0.0) + seconds
    by = {k: by.get(k, 0.0) for k in ("html", "write .html", "xlsx", "chain.json", "write .json")}
    formats: dict[str, float] = {"html_s": by["html"] + by["write .html"], "xlsx_s": by["xlsx"],
                                 "chain_json_s": by["chain.json"] + by["write .json"]}
    formats["csv_s"] = stages.seconds.get("write_report", 0.0) - sum(formats.values())
    data = results.get("load_quarter (hashes)")
    figures: dict[str, Any] = {
        "stages_s": stages.seconds, "total_s": round(total, 3), "gc_s": stages.gc_s,
        "rss_at_start_mib": rss_at_start, "peak_rss_mib": stages.peak_rss_mib,
        "write_report_s": {k: round(v, 3) for k, v in formats.items()},
        "evidence_pack_html_s": round(sum(s for _, s in packing), 3),
        "events_loaded": len(data.events) if data is not None else None,
        "changes_in_report": len(report.changes),
        "rows": {name: len(frame) for name, frame in report.tables().items()},
        "files_mib": {name: round(path.stat().st_size / 2**20, 1)
                      for name, path in written.items()
                      if name in ("report.html", "report.xlsx", "evidence", "changes.csv")},
        "csv_files": sum(1 for name in written if name.endswith(".csv")),
        "chain_ok": report.chain.get("ok"), "chain_checked": report.chain.get("checked"),
        "exceptions_by_control": dict(Counter(report.exceptions["control"]))}
    if traced:
        figures["traced_peak_mib"] = stages.traced_peak_mib
        figures["traced_peak_overall_mib"] = max(stages.traced_peak_mib.values())
    return figures


def whole_chain_apart(database: Path, out_dir: Path, traced: bool = False) -> dict[str, Any]:
    """`whole_chain` in a fresh Python process (`python -m bench.report --whole ...`)."""
    result = out_dir.with_name(out_dir.name + ".json")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH"))
                                        if p)
    command = [sys.executable, "-m", "bench.report", "--whole", str(database), str(out_dir),
               str(result)] + (["--traced"] if traced else [])
    subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True)
    figures: dict[str, Any] = json.loads(result.read_text())
    return figures


def _where(path: str) -> str:
    root = str(PROJECT_ROOT) + os.sep
    if path.startswith(root):
        return path[len(root):]
    marker = "site-packages" + os.sep
    return path.split(marker, 1)[1] if marker in path else path


def profile_build(records: Any, events: Any, config: Config,
                  chain: dict[str, Any], top: int = PROFILE_TOP) -> dict[str, Any]:
    """One `build_report` under cProfile: the top functions, cumulative and own time."""
    profiler = cProfile.Profile()
    gc.collect()
    started = time.perf_counter()
    with GcMeter() as collector:
        profiler.enable()
        build_report(QUARTER, records, events, config.policy, config.roster, chain, NOW)
        profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    rows = []
    for (path, line, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        _, calls, own, cumulative, _ = entry
        rows.append({"function": f"{_where(path)}:{line}({name})", "calls": calls,
                     "own_s": round(own, 3), "cumulative_s": round(cumulative, 3),
                     "project": path.startswith(str(PROJECT_ROOT) + os.sep)
                     and ".venv" not in path})
    project = sorted((r for r in rows if r["project"]), key=lambda r: -r["cumulative_s"])
    own = sorted(rows, key=lambda r: -r["own_s"])
    strip = [{k: v for k, v in r.items() if k != "project"} for r in project[:top]]
    return {"profiled_wall_s": round(wall, 3), "gc_s": round(collector.seconds, 3),
            "by_cumulative": strip,
            "by_own_time": [{k: v for k, v in r.items() if k != "project"}
                            for r in own[:top]]}


def _database(changes: int, config: Config,
              folder: Path) -> tuple[Path, dict[str, Any]]:
    """The change log's file, built now (or reused from `BENCH_REPORT_DB`): path, figures."""
    wanted = {"changes": changes, "seed": SEED, "generator": GENERATOR, "batch": BATCH}
    named = os.environ.get("BENCH_REPORT_DB")
    path = Path(named).resolve() if named else folder / "log.db"
    marker = path.with_name(path.name + ".json")
    if named and path.exists() and marker.exists():
        saved = json.loads(marker.read_text())
        if {k: saved.get("key", {}).get(k) for k in wanted} == wanted:
            return path, {**saved["build"], "reused": str(path)}
    for suffix in ("", "-wal", "-shm", ".json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = SqlChangeLog(f"sqlite:///{path}", keys=TEST_KEYS)
    try:
        built = build_log(log, changes, config)
    finally:
        log.close()
    built["database_mib"] = round(path.stat().st_size / 2**20, 1)
    built["peak_rss_mib"] = status_mib("VmHWM")
    if named:
        marker.write_text(json.dumps({"key": wanted, "build": built}) + "\n")
    return path, built


def _ratio(value: float, base: float) -> float:
    return round(value / base, 2) if base else float("nan")


def traced_build(records: Any, events: Any, config: Config,
                 chain: dict[str, Any]) -> dict[str, Any]:
    """One more `build_report` under tracemalloc: the peak of what it allocates.

    The frames were allocated before tracing started, so they are not in the figure.
    """
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        started = time.perf_counter()
        build_report(QUARTER, records, events, config.policy, config.roster, chain, NOW)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return {"peak_mib": round(peak / 2**20, 1), "traced_s": round(seconds, 1)}


def code_version() -> dict[str, Any]:
    """The commit measured, and files of the code under test changed since it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True,
                              text=True, timeout=30, check=False).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "reporting", "integrations", "tasks",
                      "domain", "config")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head, "modified": [line[3:] for line in changed.splitlines()]}


def run_report_benchmark(changes: int | None = None) -> dict[str, Any]:
    """Every figure, JSON-serializable, with a short `notes` string.

    Args:
        changes: how many changes; default `BENCH_REPORT_CHANGES`, else 100,000.
    """
    if changes is None:
        changes = int(os.environ.get("BENCH_REPORT_CHANGES", str(CHANGES)))
    profile = os.environ.get("BENCH_REPORT_PROFILE", "1") != "0"
    trace = os.environ.get("BENCH_REPORT_TRACE", "build")
    begun = time.perf_counter()
    version = code_version()
    config = load_config(PROJECT_ROOT / "config")
    start, end = QUARTER.bounds(config.policy.schedule.zone)
    traced: dict[str, Any] = {"mode": trace}
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-report-") as tmp:
        folder = Path(tmp)
        path, built = _database(changes, config, folder)
        # freshly opened, as a report process does
        log = SqlChangeLog(f"sqlite:///{path}", keys=TEST_KEYS)
        try:
            load, records, events = pandas_load(log, start, end)
            chain = {"ok": True, "checked": load["events"], "head_seq": load["events"],
                     "head_hash": "0" * 64, "problem": None}
            gc.collect()
            started = time.perf_counter()
            with GcMeter() as collector:
                build_report(QUARTER, records, events, config.policy, config.roster, chain,
                             NOW)
            build_s = time.perf_counter() - started
            profiled = profile_build(records, events, config, chain) if profile else None
            if trace == "build":
                traced["build_report"] = traced_build(records, events, config, chain)
        finally:
            log.close()
        del records, events
        whole = whole_chain_apart(path, folder / "report")
        if trace == "whole":
            again = whole_chain_apart(path, folder / "report-traced", traced=True)
            traced.update(whole_peak_mib=again["traced_peak_overall_mib"],
                          by_stage_mib=again["traced_peak_mib"],
                          traced_stages_s=again["stages_s"])
    load_s = load["best_s"]
    s = whole["stages_s"]
    total = whole["total_s"]  # produce_report's wall time: the stages and the glue
    without_verify = total - s.get("verify", 0.0)
    peak = max(whole["peak_rss_mib"].values())
    results: dict[str, Any] = {
        "quarter": str(QUARTER), "changes": changes, "code": version, "build": built,
        "pandas_load": load,
        "build_report": {"seconds": round(build_s, 3), "gc_s": round(collector.seconds, 3),
                         "full_collections": collector.full},
        "whole": {**whole, "total_without_verify_s": round(without_verify, 3)},
        "ratios": {
            "load_and_build_report": _ratio(load_s + build_s, load_s),
            "whole_without_verify": _ratio(without_verify, load_s),
            "whole_with_verify": _ratio(total, load_s)},
        "memory": {"peak_rss_report_mib": peak,
                   "peak_rss_stage": max(whole["peak_rss_mib"],
                                         key=lambda k: whole["peak_rss_mib"][k]),
                   "report_process_start_rss_mib": whole["rss_at_start_mib"],
                   "traced": traced},
        "goal_ratio": GOAL_RATIO, "goal_peak_mib": GOAL_PEAK_MIB,
        "profile_build_report": profiled,
        "total_s": round(time.perf_counter() - begun, 1), "notes": NOTES}
    results["meets_goal"] = {
        "time": results["ratios"]["whole_with_verify"] <= GOAL_RATIO,
        "time_without_verify": results["ratios"]["whole_without_verify"] <= GOAL_RATIO,
        "memory": peak <= GOAL_PEAK_MIB}
    return results


NOTES = (
    "SQLite change log in a temp folder, 2026Q4 Europe/Berlin, built with append_many in "
    "time order (batches of 5,000 events; normal 70 %, rolled back 5 %, standard 15 %, "
    "emergency 3 %, rejected 7 %). Baseline: change_frames (no hashes), "
    "best of 3, same process, freshly opened log. build_report timed once on those frames. "
    "Whole: the real produce_report in a fresh process, its stages (load_quarter with "
    "hashes, verify on every core, build_report, write_report, change_evidence, "
    "write_evidence_pack) timed through wrappers; "
    "write_report's formats timed by wrapping render_html, write_text, _write_workbook and "
    "chain_json (CSV is the rest). Ratios over the baseline; verify checks the whole log "
    "and has its own goal, so the whole is given with and without it. Peak RSS: VmHWM reset "
    "before each stage (clear_refs); verify's worker process not counted; the memory goal "
    "is judged on it. Traced: tracemalloc peak of what one more, untimed, build_report "
    "allocates on top of the frames (BENCH_REPORT_TRACE=whole: the whole chain traced "
    "instead, slow). Profile: one more build_report under cProfile (slower than untimed). "
    "GC: time between gc.callbacks start and stop, per stage."
)


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A few lines for `make bench`."""
    r, w, m = results["ratios"], results["whole"], results["memory"]
    b, load = results["build"], results["pandas_load"]
    return [
        f"report: {results['changes']:,} changes, {b['events']:,} events (log built in "
        f"{b['build_s']} s, {b['events_per_s']:,}/s); pandas load {load['best_s']:.2f} s; "
        f"build_report {results['build_report']['seconds']:.2f} s; load + build_report "
        f"{r['load_and_build_report']}x (goal {results['goal_ratio']}x)",
        f"report: whole chain {w['total_s']:.1f} s ({w['total_without_verify_s']:.1f} s "
        f"without verify): {r['whole_with_verify']}x the load ({r['whole_without_verify']}x "
        f"without verify); peak RSS {m['peak_rss_report_mib']} MiB in "
        f"{m['peak_rss_stage']} (goal {results['goal_peak_mib']:.0f} MiB)"]


def print_summary(results: dict[str, Any]) -> None:
    """The figures, readable."""
    b, load, w = results["build"], results["pandas_load"], results["whole"]
    r, m = results["ratios"], results["memory"]
    reused = f" (reused {b['reused']})" if b.get("reused") else ""
    print(f"quarterly report {results['quarter']}: {results['changes']:,} changes, "
          f"{b['events']:,} events ({b['events_per_change']} per change), "
          f"database {b.get('database_mib')} MiB")
    print(f"   build the log: {b['build_s']} s{reused} ({b['events_per_s']:,} events/s, "
          f"batches of {b['batch_events']:,}); mix {b['mix']}")
    print(f"   pandas load (change_frames): best {load['best_s']:.2f} s of "
          f"{load['runs_s']}; {load['records']:,} records, {load['events']:,} events, frames "
          f"{load['frames_mib']} MiB; peak RSS of the first load "
          f"{load['first_run_peak_rss_mib']} MiB")
    br = results["build_report"]
    print(f"   build_report on those frames: {br['seconds']:.2f} s, of which {br['gc_s']:.2f} s "
          f"in the garbage collector ({br['full_collections']} full collections)")
    print(f"   (load + build_report) / load: {r['load_and_build_report']}x "
          f"(goal {results['goal_ratio']}x)")
    print("   whole chain, as produce_report runs it, in a process of its own (RSS "
          f"{m['report_process_start_rss_mib']} MiB after imports):")
    for name, seconds in w["stages_s"].items():
        print(f"     {name:24} {seconds:8.2f} s   (GC {w['gc_s'][name]:5.2f} s)   peak RSS "
              f"{w['peak_rss_mib'][name]:7.1f} MiB")
    f = w["write_report_s"]
    print(f"     write_report by format: HTML {f['html_s']:.2f} s, CSV {f['csv_s']:.2f} s "
          f"({w['csv_files']} files), XLSX {f['xlsx_s']:.2f} s, chain.json "
          f"{f['chain_json_s']:.3f} s; the evidence pack renders the HTML again in "
          f"{w['evidence_pack_html_s']:.2f} s")
    print(f"     total {w['total_s']:.2f} s, without verify {w['total_without_verify_s']:.2f} s;"
          f" files {w['files_mib']} MiB; rows {w['rows']}")
    print(f"   whole / load: {r['whole_with_verify']}x with verify, {r['whole_without_verify']}x"
          f" without (goal {results['goal_ratio']}x)")
    t = m["traced"]
    print(f"   memory: the report process peaks at {m['peak_rss_report_mib']} MiB RSS, in "
          f"{m['peak_rss_stage']} (goal {results['goal_peak_mib']:.0f} MiB)")
    if "build_report" in t:
        print(f"   tracemalloc: build_report allocates up to {t['build_report']['peak_mib']} MiB "
              f"on top of the frames ({load['frames_mib']} MiB); traced run "
              f"{t['build_report']['traced_s']} s")
    if "whole_peak_mib" in t:
        print(f"   tracemalloc, whole chain: peak {t['whole_peak_mib']} MiB; by stage "
              f"{t['by_stage_mib']}")
    p = results["profile_build_report"]
    if p:
        print(f"   build_report under cProfile ({p['profiled_wall_s']:.1f} s, {p['gc_s']:.1f} s of "
              "it in the garbage collector, charged to whichever function allocated when a "
              "collection started), project functions by cumulative time:")
        for row in p["by_cumulative"]:
            print(f"     {row['cumulative_s']:8.2f} s cum {row['own_s']:7.2f} s own "
                  f"{row['calls']:>9,} calls  {row['function']}")
        print("   by own time (all functions):")
        for row in p["by_own_time"][:15]:
            print(f"     {row['own_s']:8.2f} s own {row['cumulative_s']:7.2f} s cum "
                  f"{row['calls']:>9,} calls  {row['function']}")
    code = results["code"]
    print(f"   goal met: {results['meets_goal']}; code {code.get('commit')} "
          f"(modified: {code.get('modified') or 'none'}); total {results['total_s']} s")


def main(argv: list[str]) -> None:
    """The benchmark; or, with `--whole DB OUT RESULT [--traced]`, one whole chain."""
    if argv[:1] == ["--whole"]:
        database, out_dir, result = (Path(a) for a in argv[1:4])
        figures = whole_chain(database, out_dir, traced="--traced" in argv)
        result.write_text(json.dumps(figures) + "\n")
        return
    print_summary(run_report_benchmark())


if __name__ == "__main__":
    main(sys.argv[1:])
