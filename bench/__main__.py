"""`make bench`: measure, print, and save the figures docs/benchmarks.md quotes.

Runs the change-log benchmarks on SQLite and on a throw-away PostgreSQL, then the
lifecycle benchmarks (overhead per change; 50 changes waiting; 200 changes at once on
a Prefect server and change log on PostgreSQL), then jira-sync against
the local Jira (full sync of 10,000 tickets; idle incremental sync), then the quarterly
report over 100,000 changes, then notices by e-mail to a local SMTP server, with the
machine's description, and writes
`bench/results/latest.json`.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from bench.changelog import appends, sqlite_url, verify
from bench.jira_sync import run_jira_sync_benchmarks, summary_lines
from bench.lifecycle import print_summary, run_lifecycle_benchmarks
from bench.load import run_load
from bench.notices import run_notice_benchmarks
from bench.notices import summary_lines as notice_lines
from bench.report import run_report_benchmark
from bench.report import summary_lines as report_lines
from tests.support.postgres import running_postgres

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def main() -> None:
    """Run every benchmark and print a summary."""
    events = int(os.environ.get("BENCH_VERIFY_EVENTS", "1000000"))
    results: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="changeflow-bench-") as tmp:
        folder = Path(tmp)
        results["appends_sqlite"] = appends(sqlite_url(folder, "appends"))
        results["verify_sqlite"] = verify(sqlite_url(folder, "verify"), events)
    with running_postgres() as pg:
        results["appends_postgresql"] = appends(pg.create_database())
        results["verify_postgresql"] = verify(pg.create_database(), events)
        results["load"] = run_load(int(os.environ.get("BENCH_LOAD_CHANGES", "200")), 10, pg)
    results["lifecycle"] = run_lifecycle_benchmarks()
    results["jira_sync"] = run_jira_sync_benchmarks()
    results["report"] = run_report_benchmark()
    results["notices"] = run_notice_benchmarks()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['system']}")
    for db in ("sqlite", "postgresql"):
        a, v = results[f"appends_{db}"], results[f"verify_{db}"]
        print(f"{db:10} appends: {a['single_per_s']:>6}/s one per transaction, "
              f"{a['batched_per_s']:>6}/s in batches of {a['batch_size']}")
        print(f"{db:10} verify {v['events']:,} events: {v['verify_s']:.2f} s in "
              f"{v['processes']} processes, {v['verify_one_process_s']:.2f} s in one; floor "
              f"(sha256 and HMAC over the same {v['megabytes']} MB in memory): "
              f"{v['floor_s']:.2f} s (ratio {v['ratio']}x, one process "
              f"{v['one_process_ratio']}x); pre-deploy check at 100,000 changes: "
              f"{v['predeploy_check_ms']} ms")
    print_summary(results["lifecycle"])
    load = results["load"]
    print(f"load: {load['changes']} changes at once over {load['services']} services: "
          f"{load['seconds']} s, {load['changes_per_minute']} changes/min, "
          f"{load['succeeded']} succeeded, chain {'ok' if load['chain_ok'] else 'BROKEN'}, "
          f"{len(load['overlaps'])} overlapping deploys; peak RSS {load['peak_rss_mib']} MiB "
          f"(server {load['server_peak_rss_mib']} MiB)")
    for line in (summary_lines(results["jira_sync"]) + report_lines(results["report"])
                 + notice_lines(results["notices"])):
        print(line)
    print(f"saved {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
