"""Lifecycle benchmarks: what Prefect orchestration costs a change, and what waiting costs.

1. **Overhead.** A normal change (a copy of CHG-101) runs end to end through
   `change_request`, in this process, against a Prefect server of its own. Everything
   outside Prefect and the change log is instant: commands succeed without a subprocess
   and checks pass without HTTP. The change log (SQLite), the local tickets and the
   outbox (which carries the one-time codes to the scripted approver) are the real
   adapters. Beside it, on the same server, run two bare flows with as many trivial
   tasks as one lifecycle makes task runs: one with tasks only, and one that also pauses
   as often as the lifecycle does, answered by the same scripted approver through the
   same outbox. The three are interleaved, one of each per round.
2. **Waiting.** `changeflow serve` runs as a subprocess; 50 `change-request` runs are
   started from the deployment and all wait for the engineering lead. Measured: how long
   until all 50 are Suspended, how many processes the serve process still has, and the
   RSS of the serve and server processes. For contrast, 50 flows paused in one process.

Run alone with `.venv/bin/python -m bench.lifecycle`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, State, StateType, TaskRun
from prefect.client.schemas.sorting import LogSort
from prefect.deployments import run_deployment
from prefect.events.worker import EventsWorker
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.logging.handlers import APILogWorker
from prefect.runtime import flow_run
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from changeflow.approver import ScriptedApprover
from changeflow.prefect_server import local_prefect_server
from changeflow.stack import SAMPLE_PORT, write_config
from config.loader import load_config
from config.settings import PROJECT_ROOT, Settings
from domain.models import CheckResult, CommandResult, Notice
from domain.services import HttpCheck
from integrations.chain_keys import ensure_key_file, read_key_file
from integrations.factory import Adapters, installed, open_change_log
from integrations.local_tickets import LocalChangeTickets
from integrations.outbox import OutboxNotifier
from tasks.approvals import form_for

T = TypeVar("T")

TEMPLATE = PROJECT_ROOT / "examples" / "tickets" / "CHG-101.yaml"
"""Every benchmarked change is a copy of this normal change."""
POLL_SECONDS = 0.05
"""How often a paused run asks the server whether it was resumed (both variants)."""
APPROVER_INTERVAL = 0.1
"""How often the scripted approver looks for waiting runs (both variants)."""
APPROVAL_TIMEOUT_HOURS = 0.05
"""Three minutes: a wait nobody answers fails the benchmark instead of hanging it."""


# --- small tools -----------------------------------------------------------------------

def wait_for(condition: Callable[[], T | None], what: str, timeout: float,
             interval: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds.

    Raises:
        TimeoutError: the condition did not hold in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def children_of(pid: int) -> list[int]:
    """Live (not zombie) child processes of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def descendants_of(pid: int) -> list[int]:
    """Every live process below `pid`."""
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = children_of(todo.pop())
        found += kids
        todo += kids
    return found


def processes_mentioning(markers: Sequence[str]) -> list[int]:
    """Live processes other than this one whose environment holds one of `markers`.

    Every process the benchmarks start (server, serve, flow runs) has its server's API
    URL in its environment, with a port chosen for this run.
    """
    wanted = [m.encode() for m in markers]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and stat[0] not in ("Z", "X") and any(m in environ for m in wanted):
            found.append(int(entry.name))
    return found


def status_kib(pid: int, field: str = "VmRSS") -> int:
    """A `/proc/<pid>/status` memory field in KiB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _mib(kib: float) -> float:
    return round(kib / 1024, 1)


def _summary(seconds: Sequence[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(seconds), 3),
            "mean_s": round(statistics.fmean(seconds), 3),
            "min_s": round(min(seconds), 3), "max_s": round(max(seconds), 3)}


def _copy_tickets(folder: Path, keys: Sequence[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key in keys:
        shutil.copyfile(TEMPLATE, folder / f"{key}.yaml")


@contextlib.contextmanager
def quiet_console() -> Iterator[None]:
    """Keep Prefect's INFO lines off the terminal; they still go to the API as usual."""
    handlers = [h for h in logging.getLogger().handlers if type(h).__name__.endswith(
        "ConsoleHandler")]
    levels = [h.level for h in handlers]
    for h in handlers:
        h.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for h, level in zip(handlers, levels, strict=True):
            h.setLevel(level)


class TaskRunCounter(logging.Handler):
    """Counts task runs finished in this process, by the engine's "Finished in" log line.

    Task runs reach the server as events, recorded a little later; this local count is
    what the server's count is waited for.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.finished = 0
        self._lock_count = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Count one finished task run."""
        if str(record.msg).startswith("Finished in state"):
            with self._lock_count:
                self.finished += 1

    @contextlib.contextmanager
    def attached(self) -> Iterator[TaskRunCounter]:
        """Listen to `prefect.task_runs` for the block (at INFO, whatever the setting)."""
        logger = logging.getLogger("prefect.task_runs")
        level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)


class RetryLog(logging.Handler):
    """The Prefect client's retries, with the back-off each one waited.

    The local Prefect server keeps its state in SQLite. When a write meets another
    one, it answers 503 ("database is locked") and the client waits about 2 s before
    trying again. These waits are the server's, not the flow's; they are counted apart.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.waits: list[tuple[float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Note one retry: when, and for how long the client waits."""
        text = record.getMessage()
        if "Another attempt will be made in " in text:
            seconds = text.split("Another attempt will be made in ", 1)[1].split("s.", 1)[0]
            self.waits.append((time.perf_counter(), float(seconds)))

    def between(self, start: float, end: float) -> list[float]:
        """The back-offs of retries that began between `start` and `end` (perf_counter)."""
        return [w for t, w in self.waits if start <= t <= end]

    @contextlib.contextmanager
    def attached(self) -> Iterator[RetryLog]:
        """Listen to `prefect.client` (which logs retries at DEBUG) for the block."""
        logger = logging.getLogger("prefect.client")
        level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)


def task_runs_of(client: SyncPrefectClient, run_id: UUID) -> list[TaskRun]:
    """A flow run's task runs as the server recorded them."""
    return client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])), limit=200)


def settled(client: SyncPrefectClient, run_id: UUID, task_runs: int) -> bool:
    """The server holds the run's task runs, all final, and the run's closing log line.

    Task runs arrive as events and logs in batches; a run measured while the server is
    still writing the previous run's would pay for them.
    """
    runs = task_runs_of(client, run_id)
    if len(runs) < task_runs or not all(r.state is not None and r.state.is_final()
                                        for r in runs):
        return False
    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                            limit=20, sort=LogSort.TIMESTAMP_DESC)
    return any(log.task_run_id is None and log.message.startswith("Finished in state")
               for log in logs)


def drain_prefect_workers() -> None:
    """Send the logs and events Prefect still holds, before their server stops."""
    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)


# --- 1. lifecycle overhead --------------------------------------------------------------

class InstantRunner:
    """`CommandRunner` whose every command succeeds at once, without a subprocess."""

    def run(self, argv: Sequence[str], timeout_seconds: float, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        """Succeed."""
        return CommandResult(argv=list(argv), exit_code=0, stdout="ok\n", stderr="",
                             duration_seconds=0.0)


class PassingChecks:
    """`Checks` whose every check passes at once, without HTTP."""

    def check(self, spec: HttpCheck) -> CheckResult:
        """Pass."""
        return CheckResult(name=spec.name, url=str(spec.url), passed=True,
                           status_code=spec.expect_status, detail="instant",
                           duration_seconds=0.0)


def instant_adapters(root: Path, database_url: str | None = None,
                     poll_seconds: float = POLL_SECONDS,
                     timeout_hours: float = APPROVAL_TIMEOUT_HOURS) -> Adapters:
    """Real change log, tickets and outbox in `root`; instant commands and checks.

    The change log is SQLite in `root` unless `database_url` names another; the
    configuration is `root / "config"` as the caller wrote it.
    """
    settings = Settings(config_dir=root / "config", var_dir=root / "var",
                        database_url=database_url or f"sqlite:///{root / 'var' / 'changeflow.db'}",
                        database_password=None,
                        tickets_dir=root / "tickets", outbox_path=root / "var" / "outbox.jsonl",
                        approval_poll_seconds=poll_seconds, approval_timeout_hours=timeout_hours,
                        chain_key_file=root / "var" / "chain.key")
    ensure_key_file(root / "var" / "chain.key")
    config = load_config(settings.config_dir)
    return Adapters(config=config, change_log=open_change_log(settings, config),
                    tickets=LocalChangeTickets(settings.resolved_tickets_dir),
                    runner=InstantRunner(), checks=PassingChecks(),
                    notifiers={"outbox": OutboxNotifier(settings.resolved_outbox_path)},
                    settings=settings)


@task(name="trivial", cache_policy=NO_CACHE)
def trivial(i: int) -> int:
    """Do nothing worth measuring."""
    return i


def pause_after(tasks: int, pauses: int) -> list[int]:
    """After how many tasks each pause comes, spread evenly (two may share a point)."""
    return [min(tasks, max(1, round((k + 1) * tasks / (pauses + 1)))) for k in range(pauses)]


@flow(name="bench-bare")
def bare_flow(tasks: int, pauses: int = 0, outbox: str = "") -> int:
    """`tasks` trivial tasks, with `pauses` waits answered through the outbox's codes.

    Each wait sends one code to the outbox, in the format changeflow uses, and pauses
    with the same form and poll interval as a lifecycle decision.
    """
    points = pause_after(tasks, pauses)
    notifier = OutboxNotifier(Path(outbox))
    form = form_for(["bench"])
    for i in range(tasks):
        trivial(i)
        for k in [k for k, after in enumerate(points) if after == i + 1]:
            purpose = f"pause-{k}"
            notifier.notify(Notice(to="bench", kind="approval-code", change_id="BENCH",
                                   subject="bench", body=f"code: ABCD-EFGH\nrun: {flow_run.id}"
                                   f"\nrole: bench\npurpose: {purpose}"))
            interval: Any = POLL_SECONDS  # typed int by Prefect, slept as a float
            pause_flow_run(wait_for_input=form.with_initial_data(description="bench"),
                           timeout=int(APPROVAL_TIMEOUT_HOURS * 3600), key=purpose,
                           poll_interval=interval)
    return tasks


@dataclass
class Sample:
    """One measured run."""

    seconds: float
    run_id: UUID
    task_runs: int
    backoffs: list[float]


@dataclass
class Harness:
    """What every measured run shares: the client, the counters, and the settling."""

    client: SyncPrefectClient
    counter: TaskRunCounter
    retries: RetryLog

    def measure(self, call: Callable[[], State[Any]]) -> Sample:
        """Time one run, then wait until the server has settled it.

        Raises:
            RuntimeError: the run did not complete.
        """
        before = self.counter.finished
        started = time.perf_counter()
        state = call()
        ended = time.perf_counter()
        if not state.is_completed():
            raise RuntimeError(f"a benchmarked run did not complete: {state!r}")
        run_id = state.state_details.flow_run_id
        assert run_id is not None
        made = self.counter.finished - before
        wait_for(lambda: settled(self.client, run_id, made),
                 "the server to record the run's task runs and logs", 60)
        return Sample(ended - started, run_id, made, self.retries.between(started, ended))

    def traced_peak(self, call: Callable[[], State[Any]]) -> int:
        """Peak bytes Python allocated above the starting point while `call` ran."""
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            self.measure(call)
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()


def _figures(samples: Sequence[Sample]) -> dict[str, Any]:
    seconds = [s.seconds for s in samples]
    without = [s.seconds - sum(s.backoffs) for s in samples]
    return {**_summary(seconds),
            "median_without_503_backoff_s": round(statistics.median(without), 3),
            "runs_with_503_retry": sum(1 for s in samples if s.backoffs),
            "retries": sum(len(s.backoffs) for s in samples),
            "backoff_s": round(sum(sum(s.backoffs) for s in samples), 2)}


def lifecycle_overhead(changes: int = 10, servers: list[str] | None = None) -> dict[str, Any]:
    """Per-change wall time of a lifecycle against bare flows of the same shape.

    One warm-up of each variant, then `changes` rounds of lifecycle, bare tasks, bare
    tasks with pauses; then one more of each under tracemalloc for peak memory (timed
    runs are not traced: tracing slows Python down several times). Each run starts once
    the server has recorded the previous one. The server's API URL is added to `servers`.
    """
    from flows.change_request import change_request

    keys = [f"CHG-{200 + i}" for i in range(changes + 2)]  # warm-up, timed, traced
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-lifecycle-") as tmp, \
            quiet_console(), local_prefect_server(Path(tmp) / "prefect") as api, \
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), \
            TaskRunCounter().attached() as counter, RetryLog().attached() as retries, \
            get_client(sync_client=True) as client:
        if servers is not None:
            servers.append(api)
        root = Path(tmp) / "stack"
        _copy_tickets(root / "tickets", keys)
        write_config(root / "config", SAMPLE_PORT)
        adapters = instant_adapters(root)
        outbox = str(adapters.settings.resolved_outbox_path)
        approver = ScriptedApprover(adapters.settings.resolved_outbox_path)
        bench = Harness(client, counter, retries)
        try:
            with installed(adapters):
                approver.start(interval=APPROVER_INTERVAL)

                def lifecycle(key: str) -> State[Any]:
                    state: State[Any] = change_request(key, return_state=True)
                    outcome = adapters.change_log.record(key)
                    if outcome is None or outcome.outcome != "succeeded":
                        raise RuntimeError(f"{key} did not succeed: {outcome}")
                    return state

                warm = bench.measure(lambda: lifecycle(keys[0]))
                tasks = warm.task_runs
                pauses = sum(e.type == "approval_requested"
                             for e in adapters.change_log.events(keys[0]))
                names = Counter(r.name.rsplit("-", 1)[0]  # "submit-change-3f2"
                                for r in task_runs_of(client, warm.run_id))

                def bare() -> State[Any]:
                    return bare_flow(tasks, return_state=True)

                def bare_paused() -> State[Any]:
                    return bare_flow(tasks, pauses, outbox, return_state=True)

                first = {"lifecycle": warm, "bare_tasks": bench.measure(bare),
                         "bare_tasks_and_pauses": bench.measure(bare_paused)}
                samples: dict[str, list[Sample]] = {v: [] for v in first}
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                for key in keys[1:-1]:
                    for variant, call in (("lifecycle", partial(lifecycle, key)),
                                          ("bare_tasks", bare),
                                          ("bare_tasks_and_pauses", bare_paused)):
                        samples[variant].append(bench.measure(call))
                rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                peaks = {"lifecycle": bench.traced_peak(lambda: lifecycle(keys[-1])),
                         "bare_tasks": bench.traced_peak(bare),
                         "bare_tasks_and_pauses": bench.traced_peak(bare_paused)}
        finally:
            approver.stop()
            adapters.close()
            drain_prefect_workers()
    figures = {v: _figures(s) for v, s in samples.items()}
    median = {v: f["median_s"] for v, f in figures.items()}
    without = {v: f["median_without_503_backoff_s"] for v, f in figures.items()}
    return {
        "changes": changes,
        "task_runs_per_lifecycle": tasks,
        "task_runs_by_name": dict(sorted(names.items())),
        "pauses_per_lifecycle": pauses,
        "task_runs_counted_by_server": {v: sorted({x.task_runs for x in s})
                                        for v, s in samples.items()},
        **figures,
        "ratio_to_bare_tasks": round(median["lifecycle"] / median["bare_tasks"], 2),
        "ratio_to_bare_tasks_and_pauses":
            round(median["lifecycle"] / median["bare_tasks_and_pauses"], 2),
        "ratio_to_bare_tasks_and_pauses_without_503_backoff":
            round(without["lifecycle"] / without["bare_tasks_and_pauses"], 2),
        "first_run_s": {v: round(x.seconds, 3) for v, x in first.items()},
        "traced_peak_mib": {v: _mib(b / 1024) for v, b in peaks.items()},
        "maxrss_mib": {"before_timed_runs": _mib(rss_before), "after_timed_runs": _mib(rss_after)},
        "settings": {"approval_poll_seconds": POLL_SECONDS,
                     "approver_interval_s": APPROVER_INTERVAL, "heartbeats": "off"},
    }


# --- 2. fifty changes waiting -----------------------------------------------------------

def _server_pid(url: str) -> int:
    """The `prefect server start` process this process started for `url`."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    for pid in children_of(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server" in argv and port.encode() in argv:
            return pid
    raise RuntimeError(f"no Prefect server process of ours on port {port}")


def _tree_kib(pid: int) -> int:
    return sum(status_kib(p) for p in (pid, *descendants_of(pid)))


def _deployed(client: SyncPrefectClient) -> bool:
    try:
        client.read_deployment_by_name("change-request/change-request")
    except Exception:  # noqa: BLE001 - not registered yet
        return False
    return True


def _suspended(runs: Sequence[FlowRun]) -> int:
    """How many runs are Suspended with their form saved (ready for an approver)."""
    return sum(1 for r in runs if r.state is not None and r.state.name == "Suspended"
               and r.state.state_details.run_input_keyset)


def _read_runs(client: SyncPrefectClient, ids: Sequence[UUID]) -> list[FlowRun]:
    return client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)),
                                 limit=len(ids))


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`changeflow serve` as a subprocess in its own process group, stopped on exit."""
    with open(log, "wb") as out:
        serve = subprocess.Popen([str(Path(sys.executable).with_name("changeflow")), "serve"],
                                 cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield serve
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=10)
        # flow-run processes of the group that outlived the serve process
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)


def start_change(key: str) -> UUID:
    """Start a `change-request` run from its deployment, returning at once."""
    run = run_deployment("change-request/change-request", parameters={"ticket_key": key},
                         timeout=0)
    assert isinstance(run, FlowRun)  # sync context: never a coroutine
    return run.id


def _ramp(client: SyncPrefectClient, serve_pid: int, ids: Sequence[UUID],
          started: float, timeout: float) -> dict[str, Any]:
    """Watch until every run is Suspended, sampling the serve process's children."""
    peak_children, peak_tree_kib, child_hwm_kib = 0, 0, 0
    first: float | None = None
    deadline = started + timeout
    while True:
        kids = descendants_of(serve_pid)
        peak_children = max(peak_children, len(kids))
        peak_tree_kib = max(peak_tree_kib, _tree_kib(serve_pid))
        child_hwm_kib = max([child_hwm_kib, *(status_kib(k, "VmHWM") for k in kids)])
        done = _suspended(_read_runs(client, ids))
        if done and first is None:
            first = time.perf_counter() - started
        if done == len(ids):
            return {"all_suspended_s": round(time.perf_counter() - started, 2),
                    "first_suspended_s": round(first or 0.0, 2),
                    "peak_live_children": peak_children,
                    "peak_serve_tree_rss_mib": _mib(peak_tree_kib),
                    "largest_flow_run_process_rss_mib": _mib(child_hwm_kib)}
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {done} of {len(ids)} runs suspended in {timeout:.0f} s")
        time.sleep(0.2)


def waiting_for_approval(count: int = 50, timeout: float = 180,
                         servers: list[str] | None = None) -> dict[str, Any]:
    """`count` deployed changes waiting for approval at once: processes and memory held.

    The server's API URL is added to `servers`.
    """
    keys = [f"CHG-{301 + i}" for i in range(count)]
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-waiting-") as tmp, \
            quiet_console():
        root = Path(tmp)
        _copy_tickets(root / "tickets", keys)
        write_config(root / "config", SAMPLE_PORT)
        with local_prefect_server(root / "prefect") as api:
            server_pid = _server_pid(api)
            if servers is not None:
                servers.append(api)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGEFLOW_")}
            env.update(PREFECT_API_URL=api, CHANGEFLOW_CONFIG_DIR=str(root / "config"),
                       CHANGEFLOW_VAR_DIR=str(root / "var"),
                       CHANGEFLOW_DATABASE_URL=f"sqlite:///{root / 'var' / 'changeflow.db'}",
                       CHANGEFLOW_OUTBOX_PATH=str(root / "var" / "outbox.jsonl"),
                       CHANGEFLOW_TICKETS_DIR=str(root / "tickets"))
            with get_client(sync_client=True) as client, \
                    serving(env, root / "serve.log") as serve:
                wait_for(lambda: _deployed(client), "the deployments to be served", 60)
                server_idle_kib = _tree_kib(server_pid)
                serve_idle_kib = status_kib(serve.pid)
                started = time.perf_counter()
                ids = [start_change(key) for key in keys]
                submitted_s = time.perf_counter() - started
                ramp = _ramp(client, serve.pid, ids, started, timeout)
                exited = time.perf_counter()
                with contextlib.suppress(TimeoutError):  # what is left is the figure
                    wait_for(lambda: not descendants_of(serve.pid), "the flow-run "
                             "processes to exit", 60, interval=0.2)
                exit_s = time.perf_counter() - exited
                states = Counter(r.state.name if r.state else "?"
                                 for r in _read_runs(client, ids))
                held = {"live_children_of_serve": len(descendants_of(serve.pid)),
                        "serve_rss_mib": _mib(status_kib(serve.pid)),
                        "serve_peak_rss_mib": _mib(status_kib(serve.pid, "VmHWM")),
                        "server_rss_mib": _mib(_tree_kib(server_pid)),
                        "server_processes": 1 + len(descendants_of(server_pid))}
            requested = _approval_requests(root)
            contrast = paused_in_one_process(count, api)
            drain_prefect_workers()
    return {"changes": count, "submit_s": round(submitted_s, 2), **ramp,
            "children_gone_after_s": round(exit_s, 2), "states": dict(states),
            "approval_requests_recorded": requested,
            "idle": {"serve_rss_mib": _mib(serve_idle_kib),
                     "server_rss_mib": _mib(server_idle_kib)},
            "while_waiting": held, "in_one_process": contrast}


def _approval_requests(root: Path) -> int:
    from integrations.changelog_sql import SqlChangeLog

    log = SqlChangeLog(f"sqlite:///{root / 'var' / 'changeflow.db'}",
                       keys=read_key_file(root / "var" / "chain.key"))
    try:
        return sum(sum(e.type == "approval_requested" for e in log.events(r.change_id))
                   for r in log.changes())
    finally:
        log.close()


@flow(name="bench-held")
def held_flow(poll: float) -> None:
    """One trivial task, then a pause held in this process until resumed."""
    trivial(0)
    interval: Any = poll
    pause_flow_run(timeout=600, poll_interval=interval, key="held")


def hold_paused(count: int, poll: float = 5.0) -> None:
    """In this process: `count` threads each running a paused flow; print RSS as JSON.

    The process imports what a change-request run imports first, so that its baseline is
    a flow-run process's. Resumes every run before exiting.
    """
    import flows.change_request  # noqa: F401 - the baseline of a change-request process

    base_kib = status_kib(os.getpid())
    threads = [threading.Thread(target=held_flow, args=(poll,), daemon=True)
               for _ in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    with get_client(sync_client=True) as client:
        def paused() -> list[FlowRun]:
            runs = [r for r in client.read_flow_runs(limit=200)
                    if r.state is not None and r.state.type is StateType.PAUSED
                    and r.state.state_details.pause_key == "held"]
            return runs if len(runs) == count else []

        runs = wait_for(paused, f"{count} in-process runs to pause", 120, interval=0.2)
        all_paused_s = time.perf_counter() - started
        rss_kib = status_kib(os.getpid())
        threads_now = int(next(line.split()[1] for line in
                               Path("/proc/self/status").read_text().splitlines()
                               if line.startswith("Threads:")))
        for run in runs:
            resume_flow_run(run.id)
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    print(json.dumps({"paused_runs": count, "all_paused_s": round(all_paused_s, 2),
                      "baseline_rss_mib": _mib(base_kib), "rss_mib": _mib(rss_kib),
                      "per_paused_run_mib": _mib((rss_kib - base_kib) / count),
                      "threads": threads_now, "poll_seconds": poll,
                      "all_resumed": not any(t.is_alive() for t in threads)}))


def paused_in_one_process(count: int, api: str) -> dict[str, Any]:
    """Run `hold_paused` in a fresh process against `api` and return what it printed."""
    env = {**os.environ, "PREFECT_API_URL": api}
    child = subprocess.Popen(
        [sys.executable, "-c", f"from bench.lifecycle import hold_paused; hold_paused({count})"],
        cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = child.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise
    if child.returncode != 0:
        raise RuntimeError(f"the in-process contrast failed:\n{err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# --- both -------------------------------------------------------------------------------

def run_lifecycle_benchmarks(changes: int = 10, waiting: int = 50) -> dict[str, Any]:
    """Both benchmarks; JSON-serializable figures and a short `notes` string."""
    started = time.perf_counter()
    servers: list[str] = []
    overhead = lifecycle_overhead(changes, servers)
    waits = waiting_for_approval(waiting, servers=servers)
    leftovers = sorted({*descendants_of(os.getpid()), *processes_mentioning(servers)})
    return {
        "lifecycle_overhead": overhead,
        "waiting_for_approval": waits,
        "processes_left_behind": len(leftovers),
        "total_s": round(time.perf_counter() - started, 1),
        "notes": NOTES,
    }


NOTES = (
    "Overhead: a normal change (copy of CHG-101) through change_request, in-process, against "
    "a local Prefect server (SQLite); change log, tickets and outbox real, commands and checks "
    "instant. Bare flows: as many trivial tasks as the lifecycle's task runs, and as many "
    "pauses answered by the same scripted approver through the outbox. Rounds interleave the "
    "three; each run starts once the server has recorded the previous one; heartbeats off; "
    "medians. The server answers 503 when its SQLite is locked and the client backs off about "
    "2 s: these back-offs are counted, and figures without them given beside. Memory: "
    "tracemalloc peak of Python allocations in one untimed run of each, and the process's "
    "maxrss. Waiting: changeflow serve as a subprocess (no process limit), runs started with "
    "run_deployment(timeout=0); RSS is /proc VmRSS; the runner polls for new runs every 10 s."
)


def print_summary(results: dict[str, Any]) -> None:
    """The figures, readable."""
    o, w = results["lifecycle_overhead"], results["waiting_for_approval"]
    print(f"1. lifecycle overhead: {o['changes']} normal changes, in-process, instant "
          "commands and checks")
    print(f"   one lifecycle makes {o['task_runs_per_lifecycle']} task runs and "
          f"{o['pauses_per_lifecycle']} pauses (server counts per run: "
          f"{o['task_runs_counted_by_server']})")
    for label, key in (("lifecycle", "lifecycle"), ("bare, tasks only", "bare_tasks"),
                       ("bare, tasks + pauses", "bare_tasks_and_pauses")):
        f = o[key]
        print(f"   {label:21} median {f['median_s']:6.3f} s (min {f['min_s']:.3f}, max "
              f"{f['max_s']:.3f}, first run {o['first_run_s'][key]:.3f}); 503 retries in "
              f"{f['runs_with_503_retry']} of {o['changes']} runs, median without their "
              f"back-off {f['median_without_503_backoff_s']:.3f} s")
    print(f"   lifecycle / bare tasks: {o['ratio_to_bare_tasks']}x; lifecycle / bare tasks + "
          f"pauses: {o['ratio_to_bare_tasks_and_pauses']}x (without 503 back-offs "
          f"{o['ratio_to_bare_tasks_and_pauses_without_503_backoff']}x); goal 1.5x")
    p = o["traced_peak_mib"]
    print(f"   peak Python allocations in one run (tracemalloc): lifecycle {p['lifecycle']} "
          f"MiB, bare tasks {p['bare_tasks']} MiB, bare tasks + pauses "
          f"{p['bare_tasks_and_pauses']} MiB; process maxrss "
          f"{o['maxrss_mib']['before_timed_runs']} -> {o['maxrss_mib']['after_timed_runs']} MiB "
          "over the timed runs")
    h = w["while_waiting"]
    print(f"2. {w['changes']} changes waiting for approval, served by `changeflow serve`")
    print(f"   run_deployment x{w['changes']}: {w['submit_s']} s; first Suspended at "
          f"{w['first_suspended_s']} s, all {w['changes']} at {w['all_suspended_s']} s; "
          f"states {w['states']}; approval requests in the change log: "
          f"{w['approval_requests_recorded']}")
    print(f"   during the ramp: up to {w['peak_live_children']} flow-run processes at once, "
          f"serve process tree up to {w['peak_serve_tree_rss_mib']} MiB, largest flow-run "
          f"process {w['largest_flow_run_process_rss_mib']} MiB")
    print(f"   while all wait: {h['live_children_of_serve']} live child processes of serve "
          f"(the last exited {w['children_gone_after_s']} s after the last suspension); serve "
          f"RSS {h['serve_rss_mib']} MiB (idle {w['idle']['serve_rss_mib']}); server RSS "
          f"{h['server_rss_mib']} MiB in {h['server_processes']} process(es) (idle "
          f"{w['idle']['server_rss_mib']})")
    c = w["in_one_process"]
    print(f"   contrast: {c['paused_runs']} flows paused in one process hold {c['rss_mib']} MiB "
          f"RSS ({c['baseline_rss_mib']} MiB before, +{c['per_paused_run_mib']} MiB per run) "
          f"and {c['threads']} threads, polling every {c['poll_seconds']} s")
    print(f"processes left behind: {results['processes_left_behind']}; total "
          f"{results['total_s']} s")


if __name__ == "__main__":
    print_summary(run_lifecycle_benchmarks())
