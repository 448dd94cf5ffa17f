"""jira-sync benchmark: a full sync of 10,000 tickets, and an idle incremental sync.

Everything runs in this process against a Prefect server of its own and the local Jira
(`tests/fakes/jira_server.py`, Cloud mode; Data Center too with
`BENCH_JIRA_MODES=cloud,datacenter`). The change project is set up as the flow tests do
(`jira_project`), and 10,000 copies of CHG-101 (each with its own summary and version)
are created through the fake's admin API, their `updated` times one minute apart and
ending an hour ago.

1. **Full sync.** `jira_sync()` with adapters installed by `embedded_stack` (tickets in
   Jira, SQLite change log in the stack's folder): every ticket read, one
   `ticket_snapshot` event each. Each repetition gets a fresh stack, so a fresh change
   log and sync state (and a fresh Jira client). Measured: wall time, requests the fake
   answered, the flow's own request count, pages, and memory.
2. **Baseline, in the same run.** A plain loop with `requests.Session` asks the fake for
   the same pages the sync asks for (same JQL, fields, page size, credentials) and
   decodes each one with `json()`. Three baseline loops run just before each timed sync,
   against the same fake, so both see the same load. Ratio: median sync / median loop.
   A warm-up of both comes first, untimed.
3. **Incremental sync with nothing changed**, right after each full sync: requests and
   wall time. The 5-minute overlap re-reads the last few tickets, unchanged. Also once
   with freshly built adapters on the same change log, as a scheduled run (a process of
   its own) would do it, to show what building the Jira client asks of Jira.
4. **Where the time goes.** Two more full syncs with timers around their parts: the
   fetch-page tasks, the adapter's search (and in it the HTTP requests with their JSON
   decoding, and `to_ticket`), `process_page` (change-log appends, sync state, digests),
   and the progress artifact (medians per part). Beside them: the same reading and
   recording without Prefect, and bare Prefect flows of as many tasks as the sync has
   pages, with and without the adapters as a task argument.

Memory: tracemalloc peak of Python allocations (every thread, the fake's included) in one
more, untimed, full sync (tracemalloc slows Python down several times, so timed runs are
not traced); and the process's RSS and high-water mark around its first full sync (the
untimed warm-up), after the 10,000 tickets were created in the fake.

Run alone with `.venv/bin/python -m bench.jira_sync`.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial, wraps
from pathlib import Path
from typing import Any, cast

import requests
from jira import JIRA
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import State
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

import flows.jira_sync as sync_flow
import tasks.sync as sync_tasks
from bench.lifecycle import (
    _mib,
    _server_pid,
    descendants_of,
    drain_prefect_workers,
    quiet_console,
    settled,
    status_kib,
    wait_for,
)
from changeflow.prefect_server import local_prefect_server
from changeflow.stack import Stack, embedded_stack
from integrations.changelog_sql import SqlChangeLog
from integrations.factory import Adapters, open_adapters
from integrations.jira_tickets import PAGE_SIZE, JiraChangeTickets
from integrations.sync_state import SyncState
from tasks.sync import SyncCounts, process_page
from tests.fakes.jira_server import FakeJira, Mode
from tests.support.jira import JiraProject, jira_project, load_example
from tests.support.keys import TEST_KEYS

TICKETS = 10_000
REPETITIONS = 3
"""Timed full syncs per mode, each with a fresh stack (change log, sync state, client)."""
BASELINE_LOOPS = 3
"""Plain loops over the pages just before each timed full sync."""
BREAKDOWN_RUNS = 2
"""Instrumented full syncs, for where the time goes (medians per part)."""
GOAL_RATIO = 1.5


# --- setup --------------------------------------------------------------------------------

def create_tickets(project: JiraProject, count: int) -> None:
    """`count` copies of CHG-101, `updated` one minute apart, the newest an hour ago."""
    data = load_example("CHG-101")
    author = project.users[data.pop("author")]
    first = datetime.now(UTC) - timedelta(minutes=count + 60)
    for i in range(count):
        fields = project.jira_fields({**data, "summary": f"{data['summary']} (#{i})",
                                      "version": f"1.{i // 100}.{i % 100}"})
        project.fake.create_issue(project.mapping.project, fields, as_user=author,
                                  created=first + timedelta(minutes=i))


def jira_of(stack: Stack) -> JiraChangeTickets:
    tickets = stack.adapters.tickets
    assert isinstance(tickets, JiraChangeTickets)
    return tickets


class CpuMeter:
    """Wall time and CPU time of a stretch: this thread, this process, the Prefect server.

    The process's CPU includes its other threads: the fake's request handlers and Prefect's
    background workers (events, logs). The server's is its whole process tree's.
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def _server_cpu(self) -> float:
        ticks = 0
        for pid in (self.server_pid, *descendants_of(self.server_pid)):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def start(self) -> tuple[float, float, float, float]:
        server = self._server_cpu()  # first: reading /proc takes a few ms
        return time.thread_time(), time.process_time(), server, time.perf_counter()

    def since(self, start: tuple[float, float, float, float]) -> dict[str, float]:
        wall = time.perf_counter() - start[3]
        thread, process = time.thread_time() - start[0], time.process_time() - start[1]
        return {"wall_s": wall, "main_thread_cpu_s": thread,
                "other_threads_cpu_s": process - thread,
                "prefect_server_cpu_s": self._server_cpu() - start[2]}


# --- the baseline: a plain loop over `requests` ---------------------------------------------

def plain_pages(fake: FakeJira, project: JiraProject, jql: str, fields: list[str],
                keep: bool = True) -> tuple[float, list[dict[str, Any]]]:
    """Fetch every page of the search with `requests` and decode it; (seconds, pages)."""
    session = requests.Session()
    if fake.mode == "cloud":
        session.auth = (project.service.email, project.service.token)
    else:
        session.headers["Authorization"] = f"Bearer {project.service.token}"
    params: dict[str, Any] = {"jql": jql, "maxResults": PAGE_SIZE, "fields": ",".join(fields)}
    pages: list[dict[str, Any]] = []
    started = time.perf_counter()
    with session:
        if fake.mode == "cloud":
            token = None
            while True:
                answer = session.get(f"{fake.url}/rest/api/2/search/jql",
                                     params={**params, "nextPageToken": token} if token
                                     else params, timeout=10)
                answer.raise_for_status()
                body = answer.json()
                if keep:
                    pages.append(body)
                token = body.get("nextPageToken")
                if not token:
                    break
        else:
            start = 0
            while True:
                answer = session.get(f"{fake.url}/rest/api/2/search",
                                     params={**params, "startAt": start}, timeout=10)
                answer.raise_for_status()
                body = answer.json()
                if keep:
                    pages.append(body)
                start += len(body.get("issues") or [])
                if not body.get("issues") or start >= int(body.get("total", 0)):
                    break
    return time.perf_counter() - started, pages


# --- running the flow ---------------------------------------------------------------------

def run_sync(client: SyncPrefectClient, meter: CpuMeter | None = None,
             cpu: dict[str, float] | None = None) -> tuple[float, dict[str, Any]]:
    """One `jira_sync` run: (wall seconds, its result). Returns once the server has it all.

    The next run should not pay for this one's task runs and logs still on their way.
    With a `meter`, the run's CPU times are put in `cpu`.
    """
    begun = meter.start() if meter else None
    started = time.perf_counter()
    state: State[Any] = sync_flow.jira_sync(return_state=True)
    seconds = time.perf_counter() - started
    if meter and begun and cpu is not None:
        cpu.update(meter.since(begun))
    if not state.is_completed():
        raise RuntimeError(f"a benchmarked jira-sync did not complete: {state!r}")
    result: dict[str, Any] = state.result()
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    wait_for(lambda: settled(client, run_id, result["pages"]),
             "the server to record the sync's task runs and logs", 120)
    return seconds, result


def requests_by_path(fake: FakeJira) -> dict[str, int]:
    return dict(Counter(f"{r.method} {r.path}" for r in fake.requests).most_common())


def full_sync(client: SyncPrefectClient, fake: FakeJira, count: int,
              meter: CpuMeter) -> dict[str, Any]:
    """A full sync on a fresh stack's change log; checks that it read every ticket."""
    fake.clear_requests()
    cpu: dict[str, float] = {}
    seconds, result = run_sync(client, meter, cpu)
    if (result["seen"], result["changed"]) != (count, count):
        raise RuntimeError(f"the full sync read {result['seen']} tickets and recorded "
                           f"{result['changed']}, not {count}")
    return {"seconds": seconds, "requests": fake.count(), "by_path": requests_by_path(fake),
            "flow_requests": result["requests"], "pages": result["pages"], "cpu": cpu}


def idle_sync(client: SyncPrefectClient, fake: FakeJira) -> dict[str, Any]:
    """An incremental sync right after a full one: nothing changed."""
    fake.clear_requests()
    seconds, result = run_sync(client)
    if result["changed"]:
        raise RuntimeError(f"an idle sync recorded {result['changed']} changes")
    return {"seconds": seconds, "requests": fake.count(), "by_path": requests_by_path(fake),
            "flow_requests": result["requests"], "pages": result["pages"],
            "tickets_read": result["seen"]}


# --- where the time goes -------------------------------------------------------------------

class Timers:
    """Wall time and calls per named part, by wrapping functions for the duration."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: Counter[str] = Counter()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = (self.seconds.get(name, 0.0)
                                      + time.perf_counter() - started)
                self.calls[name] += 1
        return timed

    @contextlib.contextmanager
    def around(self, targets: dict[str, tuple[Any, str]]) -> Iterator[Timers]:
        """Time `getattr(owner, attribute)` as `name` for each of `targets`; undo on exit."""
        saved = [(owner, attribute, owner.__dict__[attribute])
                 for owner, attribute in targets.values()]
        try:
            for name, (owner, attribute) in targets.items():
                setattr(owner, attribute, self.wrap(name, getattr(owner, attribute)))
            yield self
        finally:
            for owner, attribute, original in saved:
                setattr(owner, attribute, original)


PARTS: dict[str, tuple[Any, str]] = {
    "fetch_page_task": (sync_flow, "fetch_page"),
    "search_page": (JiraChangeTickets, "search_page"),
    "jira_get_json": (JIRA, "_get_json"),
    "to_ticket": (JiraChangeTickets, "to_ticket"),
    "process_page": (sync_flow, "process_page"),
    "append_many": (SqlChangeLog, "append_many"),
    "sync_state_get": (SyncState, "get"),
    "sync_state_put": (SyncState, "put"),
    "digest": (sync_tasks, "digest"),
    "update_progress_artifact": (sync_flow, "update_progress_artifact"),
}
"""What the instrumented sync times (the flow looks each of these up when it runs)."""


def instrumented_sync(client: SyncPrefectClient) -> dict[str, Any]:
    """One full sync with timers around its parts: total, seconds and calls per part."""
    timers = Timers()
    with timers.around(PARTS):
        total, _ = run_sync(client)
    return {"total": total, **timers.seconds, "calls": dict(timers.calls)}


def breakdown(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Where an instrumented sync's time went: the median of each part over `samples`."""
    def med(name: str) -> float:
        return statistics.median(float(x[name]) for x in samples)

    def med_of(fn: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(fn(x) for x in samples)

    parts = [
        ("fetch-page tasks", med("fetch_page_task"), 0),
        ("Prefect task engine (task minus search_page)",
         med_of(lambda x: x["fetch_page_task"] - x["search_page"]), 1),
        ("adapter search_page", med("search_page"), 1),
        ("HTTP request and JSON decoding (JIRA._get_json)", med("jira_get_json"), 2),
        ("to_ticket", med("to_ticket"), 2),
        ("rest of search_page (jira client, paging)",
         med_of(lambda x: x["search_page"] - x["jira_get_json"] - x["to_ticket"]), 2),
        ("process_page", med("process_page"), 0),
        ("change log append_many", med("append_many"), 1),
        ("sync state get and put", med_of(lambda x: x["sync_state_get"] + x["sync_state_put"]),
         1),
        ("digests", med("digest"), 1),
        ("rest of process_page", med_of(lambda x: x["process_page"] - x["append_many"]
                                        - x["sync_state_get"] - x["sync_state_put"]
                                        - x["digest"]), 1),
        ("update_progress_artifact", med("update_progress_artifact"), 0),
        ("flow start and finish, artifacts, the rest",
         med_of(lambda x: x["total"] - x["fetch_page_task"] - x["process_page"]
                - x["update_progress_artifact"]), 0),
    ]
    return {"runs": len(samples), "total_s": round(med("total"), 3),
            "totals_s": [round(x["total"], 3) for x in samples],
            "parts": [{"part": name, "seconds": round(value, 3), "level": level}
                      for name, value, level in parts],
            "calls": samples[0]["calls"]}


def without_prefect(stack: Stack) -> dict[str, Any]:
    """The sync's reading and recording as plain calls: no flow, no tasks, no artifacts.

    The same adapter, `search_page` and `process_page` the flow uses, on a fresh change
    log of its own.
    """
    log = SqlChangeLog(f"sqlite:///{stack.root / 'without-prefect.db'}", keys=TEST_KEYS)
    try:
        a = stack.adapters.replace(change_log=log)
        jira, state, counts = jira_of(stack), SyncState(log.engine), SyncCounts()
        jql = jira.updated_since_jql(0)
        read_s = record_s = 0.0
        cursor: str | None = ""
        while cursor is not None:
            t0 = time.perf_counter()
            tickets, cursor, _ = jira.search_page(jql, cursor)
            t1 = time.perf_counter()
            process_page(a, state, tickets, counts)
            read_s, record_s = read_s + t1 - t0, record_s + time.perf_counter() - t1
    finally:
        log.close()
    if counts.changed != counts.seen:
        raise RuntimeError(f"without Prefect: {counts.changed} of {counts.seen} recorded")
    return {"total_s": round(read_s + record_s, 3), "search_pages_s": round(read_s, 3),
            "process_pages_s": round(record_s, 3), "recorded": counts.changed}


@task(name="bench-page", cache_policy=NO_CACHE)
def page_with_adapters(a: Adapters, i: int) -> int:
    return i


@task(name="bench-page-bare", cache_policy=NO_CACHE)
def page_bare(i: int) -> int:
    return i


@flow(name="bench-pages")
def bare_pages(pages: int, with_adapters: bool) -> None:
    """As many trivial tasks as the sync has pages; the installed adapters as argument or not."""
    with open_adapters() as a:
        for i in range(pages):
            if with_adapters:
                page_with_adapters(a, i)
            else:
                page_bare(i)


def bare_task_flows(client: SyncPrefectClient, pages: int,
                    rounds: int = 3) -> dict[str, float]:
    """Median seconds for `pages` trivial tasks in a flow: without and with the adapters."""
    found: dict[str, list[float]] = {"tasks_s": [], "tasks_with_adapters_s": []}
    for _ in range(rounds):
        for label, with_adapters in (("tasks_s", False), ("tasks_with_adapters_s", True)):
            started = time.perf_counter()
            state: State[Any] = bare_pages(pages, with_adapters, return_state=True)
            found[label].append(time.perf_counter() - started)
            run_id = state.state_details.flow_run_id
            assert run_id is not None
            wait_for(partial(settled, client, run_id, pages), "the bare flow to settle", 120)
    return {label: round(statistics.median(seconds), 3) for label, seconds in found.items()}


# --- memory -------------------------------------------------------------------------------

def traced_peak(call: Callable[[], Any]) -> int:
    """Peak bytes Python allocated above the starting point while `call` ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def process_memory() -> dict[str, float]:
    """This process's RSS and its high-water mark, in MiB."""
    return {"rss": _mib(status_kib(os.getpid())), "hwm": _mib(status_kib(os.getpid(), "VmHWM"))}


def to_ticket_alone(jira: JiraChangeTickets, pages: list[dict[str, Any]]) -> float:
    """Seconds `to_ticket` takes over every issue of `pages`, outside any flow."""
    started = time.perf_counter()
    for page in pages:
        for raw in page["issues"]:
            jira.to_ticket(raw)
    return time.perf_counter() - started


# --- one mode -----------------------------------------------------------------------------

def _stats(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3), "runs_s": [round(s, 3) for s in seconds]}


def _cpu_medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(x[k] for x in samples), 3) for k in samples[0]}


def bench_mode(mode: Mode, root: Path, client: SyncPrefectClient, meter: CpuMeter,
               count: int, repetitions: int) -> dict[str, Any]:
    """Every measurement against one fake Jira in `mode`."""
    with FakeJira(mode=mode) as fake:
        project = jira_project(fake)
        started = time.perf_counter()
        create_tickets(project, count)
        created_s = time.perf_counter() - started
        settings = project.settings()

        def stack(name: str) -> contextlib.AbstractContextManager[Stack]:
            return embedded_stack(root / f"{mode}-{name}", port=0, **settings)

        # a warm-up of both, not timed: imports, the fake's sorted search, connections;
        # the first full sync in this process is the one whose RSS growth shows
        with stack("warm-up") as s:
            plain_pages(fake, project, jira_of(s).updated_since_jql(0), jira_of(s).jira_fields())
            memory = {"before": process_memory()}
            run_sync(client)
            memory["after"] = process_memory()

        baselines: list[float] = []
        baseline_cpu: list[dict[str, float]] = []
        fulls: list[dict[str, Any]] = []
        idles: list[dict[str, Any]] = []
        fresh_idle: dict[str, Any] = {}
        issues, to_ticket_s = 0, 0.0
        for i in range(repetitions):
            first = i == 0
            with stack(f"rep-{i}") as s:
                jql, fields = jira_of(s).updated_since_jql(0), jira_of(s).jira_fields()
                for _ in range(BASELINE_LOOPS):
                    begun = meter.start()
                    seconds, pages = plain_pages(fake, project, jql, fields)
                    baseline_cpu.append(meter.since(begun))
                    baselines.append(seconds)
                fulls.append(full_sync(client, fake, count, meter))
                idles.append(idle_sync(client, fake))
                if first:
                    issues = sum(len(p.get("issues") or []) for p in pages)
                    to_ticket_s = to_ticket_alone(jira_of(s), pages)
                del pages
            if first:  # the same change log, with adapters built afresh: a scheduled run
                fake.clear_requests()
                with stack(f"rep-{i}"):
                    _, result = run_sync(client)
                fresh_idle = {"requests": fake.count(), "by_path": requests_by_path(fake),
                              "flow_requests": result["requests"],
                              "changed": result["changed"]}

        samples = []
        for i in range(BREAKDOWN_RUNS):
            with stack(f"breakdown-{i}"):
                samples.append(instrumented_sync(client))
        parts = breakdown(samples)
        with stack("plain") as s:
            plain = without_prefect(s)
            bare = bare_task_flows(client, parts["calls"]["fetch_page_task"])
        with stack("traced") as s:
            sync_peak = traced_peak(lambda: run_sync(client))
            jql, fields = jira_of(s).updated_since_jql(0), jira_of(s).jira_fields()
            plain_peak = traced_peak(lambda: plain_pages(fake, project, jql, fields,
                                                         keep=False))

    sync_times = [f["seconds"] for f in fulls]
    base = _stats(baselines)
    full = _stats(sync_times)
    return {
        "mode": mode,
        "tickets": count,
        "create_tickets_s": round(created_s, 2),
        "baseline_issues_read": issues,
        "full_sync": {**full, "requests": sorted({f["requests"] for f in fulls}),
                      "requests_by_path": fulls[0]["by_path"],
                      "flow_requests": sorted({f["flow_requests"] for f in fulls}),
                      "pages": sorted({f["pages"] for f in fulls}),
                      "traced_peak_mib": _mib(sync_peak / 1024),
                      "rss_before_mib": memory["before"]["rss"],
                      "rss_after_mib": memory["after"]["rss"],
                      "hwm_before_mib": memory["before"]["hwm"],
                      "hwm_after_mib": memory["after"]["hwm"],
                      "cpu": _cpu_medians([f["cpu"] for f in fulls])},
        "baseline": {**base, "traced_peak_mib": _mib(plain_peak / 1024),
                     "cpu": _cpu_medians(baseline_cpu)},
        "ratio": round(full["median_s"] / base["median_s"], 2),
        "ratio_best": round(full["min_s"] / base["min_s"], 2),
        "idle_sync": {**_stats([x["seconds"] for x in idles]),
                      "requests": sorted({x["requests"] for x in idles}),
                      "requests_by_path": idles[0]["by_path"],
                      "flow_requests": sorted({x["flow_requests"] for x in idles}),
                      "tickets_read": sorted({x["tickets_read"] for x in idles}),
                      "fresh_adapters": fresh_idle},
        "to_ticket_alone_s": round(to_ticket_s, 3),
        "breakdown": parts,
        "without_prefect": plain,
        "bare_prefect_flows": bare,
    }


def run_jira_sync_benchmarks(count: int = TICKETS, repetitions: int = REPETITIONS,
                             modes: tuple[Mode, ...] | None = None) -> dict[str, Any]:
    """Every mode's figures; JSON-serializable, with a short `notes` string.

    Modes default to `BENCH_JIRA_MODES` (comma-separated), else Cloud only.
    """
    if modes is None:
        names = [m.strip() for m in os.environ.get("BENCH_JIRA_MODES", "cloud").split(",")]
        modes = tuple(cast(Mode, m) for m in names if m in ("cloud", "datacenter"))
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-jira-") as tmp, \
            quiet_console(), local_prefect_server(Path(tmp) / "prefect") as api, \
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), \
            get_client(sync_client=True) as client:
        meter = CpuMeter(_server_pid(api))
        try:
            for mode in modes:
                results[mode] = bench_mode(mode, Path(tmp), client, meter, count, repetitions)
        finally:
            drain_prefect_workers()
    return {**results, "repetitions": repetitions, "goal_ratio": GOAL_RATIO,
            "total_s": round(time.perf_counter() - started, 1), "notes": NOTES}


NOTES = (
    "In-process: jira_sync() with adapters from embedded_stack (tickets in the local Jira, "
    "SQLite change log), against a Prefect server of its own (SQLite), heartbeats off. "
    "10,000 copies of CHG-101, updated one minute apart, the newest an hour ago. Each timed "
    "full sync has a fresh stack (change log, sync state, Jira client) and is preceded by 3 "
    "baselines: GET search pages with requests.Session, same JQL, fields, page size and "
    "credentials, json() each. The fake runs in this process (its threads share the GIL). "
    "Ratio: median full sync / median baseline. Idle sync: right after each full sync; "
    "'fresh adapters' builds the adapters again on the same change log, as a scheduled run "
    "does. Breakdown: 2 more full syncs with timers around their parts (about 40,000 timed "
    "calls each, a few tens of ms), medians per part. Memory: tracemalloc peak (all "
    "threads) in one untimed full sync; RSS and VmHWM around the process's first full sync "
    "(the untimed warm-up)."
)


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Two lines per mode, for `make bench`."""
    lines = []
    for mode in ("cloud", "datacenter"):
        if mode not in results:
            continue
        r = results[mode]
        f, b, i = r["full_sync"], r["baseline"], r["idle_sync"]
        lines += [
            f"jira-sync {mode}: full sync of {r['tickets']:,} tickets {f['median_s']:.2f} s "
            f"(median of {len(f['runs_s'])}), {f['pages'][0]} pages, {f['requests'][0]} "
            f"requests, traced peak {f['traced_peak_mib']} MiB; plain requests loop "
            f"{b['median_s']:.2f} s; ratio {r['ratio']}x (goal {results['goal_ratio']}x)",
            f"jira-sync {mode}: idle incremental sync {i['requests'][0]} request(s) "
            f"({', '.join(i['requests_by_path'])}), {i['median_s']:.3f} s; "
            f"{i['fresh_adapters']['requests']} requests with freshly built adapters"]
    return lines


def print_summary(results: dict[str, Any]) -> None:
    """The figures, readable."""
    for mode in ("cloud", "datacenter"):
        if mode not in results:
            continue
        r = results[mode]
        f, b, i = r["full_sync"], r["baseline"], r["idle_sync"]
        print(f"jira-sync ({mode}): full sync of {r['tickets']:,} tickets: median "
              f"{f['median_s']:.2f} s (min {f['min_s']:.2f}, max {f['max_s']:.2f}, "
              f"{len(f['runs_s'])} runs); {f['pages']} pages, {f['requests']} requests to "
              f"Jira ({f['requests_by_path']})")
        print(f"   plain requests loop over the same pages: median {b['median_s']:.2f} s "
              f"(min {b['min_s']:.2f}); sync / plain loop {r['ratio']}x (best/best "
              f"{r['ratio_best']}x; goal {results['goal_ratio']}x)")
        print(f"   memory: traced peak {f['traced_peak_mib']} MiB (plain loop "
              f"{b['traced_peak_mib']} MiB); RSS {f['rss_before_mib']} -> {f['rss_after_mib']}"
              f" MiB, high-water mark {f['hwm_before_mib']} -> {f['hwm_after_mib']} MiB")
        fc, bc = f["cpu"], b["cpu"]
        print(f"   CPU (medians): sync {fc['main_thread_cpu_s']:.2f} s main thread, "
              f"{fc['other_threads_cpu_s']:.2f} s other threads (the fake's handlers, Prefect's "
              f"workers), {fc['prefect_server_cpu_s']:.2f} s Prefect server; plain loop "
              f"{bc['main_thread_cpu_s']:.2f} s, {bc['other_threads_cpu_s']:.2f} s, "
              f"{bc['prefect_server_cpu_s']:.2f} s")
        fresh = i["fresh_adapters"]
        print(f"   idle incremental sync: {i['requests']} request(s) ({i['requests_by_path']}),"
              f" {i['tickets_read']} tickets re-read, median {i['median_s']:.3f} s; with "
              f"freshly built adapters: {fresh['requests']} requests ({fresh['by_path']})")
        d, w, bare = r["breakdown"], r["without_prefect"], r["bare_prefect_flows"]
        print(f"   where the time goes (median of {d['runs']} instrumented syncs, "
              f"{d['total_s']:.2f} s; runs {d['totals_s']}):")
        for part in d["parts"]:
            label = "  " * part["level"] + part["part"]
            print(f"     {label:52} {part['seconds']:6.3f} s")
        print(f"   without Prefect (search_page + process_page): {w['total_s']:.2f} s "
              f"(reading {w['search_pages_s']:.2f}, recording {w['process_pages_s']:.2f}); "
              f"to_ticket alone {r['to_ticket_alone_s']:.2f} s; bare flow of "
              f"{d['calls']['fetch_page_task']} tasks {bare['tasks_s']:.2f} s, with the "
              f"adapters as argument {bare['tasks_with_adapters_s']:.2f} s")
    print(f"jira-sync benchmark total {results['total_s']} s")


if __name__ == "__main__":
    print_summary(run_jira_sync_benchmarks())
