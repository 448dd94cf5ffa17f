"""The quarterly report and the auditor's evidence (policy sections 5, 7 and 8).

Plain functions do the work, so `changeflow report` and `changeflow evidence` run them
without Prefect; the `quarterly-report` flow runs the same ones as tasks and leaves
artifacts (a markdown summary, tables, a link to the files).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from config.loader import config_files
from integrations.anchors import FileAnchors, signed_anchor
from integrations.changelog_frames import change_frames
from integrations.factory import Adapters
from reporting.evidence import PackChain, sample_changes, write_evidence_pack, write_sample
from reporting.files import write_report
from reporting.model import Quarter, QuarterlyReport
from reporting.quarterly import build_report, collecting_later
from reporting.trail import change_evidence


@dataclass
class QuarterData:
    """The change log's part that a quarter's report reads."""

    quarter: Quarter
    records: pd.DataFrame
    events: pd.DataFrame


def load_quarter(a: Adapters, quarter: Quarter, hashes: bool = False) -> QuarterData:
    """The records and events of the changes active in the quarter."""
    start, end = quarter.bounds(a.config.policy.schedule.zone)
    return QuarterData(quarter, *change_frames(a.change_log, start, end, hashes=hashes))


def compute_report(a: Adapters, data: QuarterData) -> QuarterlyReport:
    """The report, with the whole chain verified now (its head printed in the report)."""
    verified = a.change_log.verify()
    chain = {"ok": verified.ok, "checked": verified.checked, "head_seq": verified.head_seq,
             "head_hash": verified.head_hash,
             "problem": verified.problem or "; ".join(verified.mismatches) or None}
    return build_report(data.quarter, data.records, data.events, a.config.policy,
                        a.config.roster, chain, datetime.now(UTC))


def produce_report(a: Adapters, quarter: Quarter, out_dir: Path) -> tuple[QuarterlyReport,
                                                                          dict[str, Path]]:
    """Compute and write the quarter's report and its evidence pack into `out_dir`."""
    with collecting_later():
        data = load_quarter(a, quarter, hashes=True)
    report = compute_report(a, data)
    with collecting_later():
        written = write_report(report, out_dir)
    evidence = change_evidence(data.records, data.events, list(report.changes["change_id"]))
    written["evidence"] = write_evidence_pack(report, evidence,
                                              out_dir / f"evidence-{quarter}.zip",
                                              pack_chain(a, report))
    return report, written


def pack_chain(a: Adapters, report: QuarterlyReport) -> PackChain:
    """The chain up to the head the report verified, its start, and what vouches for it.

    The head is signed only when the chain verified: a signature must never vouch for a
    chain that does not hold.
    """
    log = a.change_log
    seq, hash_ = int(report.chain["head_seq"]), str(report.chain["head_hash"])
    checkpoint = None
    if report.chain["ok"] and seq:
        checkpoint = signed_anchor(log.keys, seq, hash_, log.event_time(seq)).line()
    anchors = FileAnchors(a.settings.resolved_anchor_file).lines(upto=seq)
    return PackChain(start=log.chain_start(), events=log.export(seq), head=(seq, hash_),
                     checkpoint=checkpoint, anchors=anchors, public_keys=log.keys.public_keys(),
                     configs=config_files(a.settings.config_dir),
                     sign=log.keys.sign, key_id=log.keys.current.id)


def produce_sample(a: Adapters, quarter: Quarter, size: int, out_dir: Path,
                   seed: str = "") -> list[Path]:
    """An auditor's reproducible sample of the quarter's changes, one page each."""
    data = load_quarter(a, quarter, hashes=True)
    report = compute_report(a, data)
    population = list(report.changes["change_id"])
    sampled = sample_changes(population, size, f"{quarter}{seed}")
    evidence = change_evidence(data.records, data.events, sampled)
    return write_sample(evidence, sampled, out_dir, seed=f"{quarter}{seed}",
                        population=len(population))


def summary_markdown(report: QuarterlyReport) -> str:
    """The report's headline figures, as markdown (the flow's summary artifact)."""
    if report.empty:
        return f"# Change management report {report.quarter}\n\nNo changes in {report.quarter}."
    lines = [f"# Change management report {report.quarter}", "",
             f"{len(report.changes)} changes; {len(report.emergencies)} emergency; "
             f"{len(report.rollbacks)} rollbacks. Chain "
             f"{'verified' if report.chain['ok'] else 'BROKEN'}, head "
             f"`{report.chain['head_hash']}`.", "", "| control | applicable | rate | "
             "exceptions |", "|---|---|---|---|"]
    for row in report.controls.to_dict("records"):
        rate = "-" if pd.isna(row["rate"]) else f"{row['rate']:.0%}"
        lines.append(f"| {row['control']} | {row['applicable']} | {rate} | "
                     f"{row['exceptions']} |")
    return "\n".join(lines)


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): (None if pd.isna(v) else str(v)) if not isinstance(v, int | float | bool)
             else v for k, v in row.items()} for row in frame.to_dict("records")]


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(report: QuarterlyReport, written: dict[str, Path]) -> None:
    """Leave the report in Prefect: a summary, its main tables, and a link to the files."""
    key = f"quarterly-report-{str(report.quarter).lower()}"
    create_markdown_artifact(key=key, markdown=summary_markdown(report),
                             description=f"Quarterly change report {report.quarter}")
    for name in ("controls", "emergencies", "rollbacks", "metrics"):
        frame = getattr(report, name)
        create_table_artifact(key=f"{key}-{name}", table=_rows(frame),
                              description=f"{report.quarter}: {name}")
    create_link_artifact(key=f"{key}-files", link=written["report.html"].resolve().as_uri(),
                         link_text=f"report {report.quarter} ({written['report.html'].parent})",
                         description="The HTML report; CSV, XLSX and the evidence pack beside it")
