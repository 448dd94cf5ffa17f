"""Evidence for auditors: a reproducible sample of changes, a page per change, a zip pack.

An auditor tests controls on a sample. The sample is drawn with `random.Random(seed)`
over the sorted change IDs, so anyone holding the IDs and the seed draws the same one.
"""

from __future__ import annotations

import json
import random
import re
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from reporting.files import chain_json, json_default, replace_atomically, write_text
from reporting.html import (
    cell_text,
    definitions,
    dicts_table,
    document,
    heading,
    render_html,
)
from reporting.model import QuarterlyReport

RECORD_FIELDS = (("change_id", "Change ID"), ("category", "Category"), ("summary", "Summary"),
                 ("description", "Description"), ("author", "Author"),
                 ("approvers", "Approvers"), ("deployed_at", "Deployment date"),
                 ("outcome", "Outcome"), ("incidents", "Incidents"), ("service", "Service"),
                 ("version", "Version"))
APPROVAL_COLUMNS = ("role", "person_id", "decision", "at", "channel", "comment", "recorded_by",
                    "fallback_reason")
EVENT_COLUMNS = ("seq", "at", "type", "actor", "payload", "hash")
UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def sample_changes(change_ids: Sequence[str], size: int, seed: str) -> list[str]:
    """A reproducible sample of `size` change IDs, sorted.

    The same IDs (in any order, duplicates ignored), size and seed give the same sample;
    a size at least the population's returns every ID.

    Raises:
        ValueError: a negative size.
    """
    if size < 0:
        raise ValueError(f"sample size must not be negative, not {size}")
    population = sorted(set(change_ids))
    if size >= len(population):
        return population
    return sorted(random.Random(seed).sample(population, size))


def file_name(change_id: str) -> str:
    """A change ID as a safe file name stem (no path separators, no leading dot)."""
    name = UNSAFE.sub("_", change_id)
    return name if name and not name.startswith(".") else f"_{name}"


def _readable(row: Mapping[str, Any]) -> dict[str, Any]:
    """`row` with ISO 8601 texts under time keys (`at`, `*_at`, `due`) as instants."""
    shown = dict(row)
    for key, value in row.items():
        if isinstance(value, str) and (key in ("at", "due") or key.endswith("_at")):
            try:
                shown[key] = datetime.fromisoformat(value)
            except ValueError:
                pass
    return shown


def _rows(evidence: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return [_readable(r) for r in evidence.get(key) or []]


def _record(record: Mapping[str, Any]) -> str:
    record = _readable(record)
    known = {k for k, _ in RECORD_FIELDS}
    items = [(label, record.get(key)) for key, label in RECORD_FIELDS]
    items += [(heading(k), v) for k, v in sorted(record.items()) if k not in known]
    shown = []
    for label, value in items:
        text = escape(cell_text(value))
        shown.append((label, f"<div style=\"white-space:pre-wrap\">{text}</div>"
                      if label == "Description" else text))
    return definitions(shown)


def _events(events: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for event in events:
        row = dict(event)
        payload = row.get("payload")
        if isinstance(payload, (dict, list)):
            row["payload"] = json.dumps(payload, default=json_default, indent=2,
                                        sort_keys=True, ensure_ascii=False)
        rows.append(row)
    return dicts_table(rows, EVENT_COLUMNS, empty="No events recorded.", mono=("hash",))


def change_page(evidence: Mapping[str, Any]) -> str:
    """One change's evidence as a self-contained HTML page; all text escaped.

    Args:
        evidence: `record` (the change record), `events`, `approvals`, `gates`,
            `deployments`, `verifications` and `incidents` (lists of dicts).
    """
    record: Mapping[str, Any] = evidence.get("record") or {}
    change_id = cell_text(record.get("change_id"))
    title = f"Change {change_id}: {cell_text(record.get('summary'))}"

    def rows(key: str) -> list[dict[str, Any]]:
        return _rows(evidence, key)

    body = "\n".join([
        f"<header><h1>{escape(title)}</h1></header>",
        "<section><h2>Record</h2>", _record(record), "</section>",
        "<section><h2>Approvals</h2>",
        dicts_table(rows("approvals"), APPROVAL_COLUMNS, empty="No approvals recorded."),
        "</section>",
        "<section><h2>Gates</h2>",
        dicts_table(rows("gates"), ("gate", "status", "reason"), empty="No gates recorded."),
        "</section>",
        "<section><h2>Deployment and verification</h2><h3>Deployments</h3>",
        dicts_table(rows("deployments"), (), empty="Not deployed."),
        "<h3>Verifications</h3>",
        dicts_table(rows("verifications"), (), empty="No verification recorded."),
        "</section>",
        "<section><h2>Incidents</h2>",
        dicts_table(rows("incidents"), (), empty="No incidents linked to this change."),
        "</section>",
        "<section><h2>Event trail</h2>",
        "<p>Every event of this change in the change log, in chain order, with its hash.</p>",
        _events(rows("events")), "</section>"])
    return document(title, body)


def _readme(report: QuarterlyReport, changes: Sequence[str]) -> str:
    chain = report.chain
    seq, head = cell_text(chain.get("head_seq")), cell_text(chain.get("head_hash"))
    listing = "\n".join(f"    {name}" for name in changes) or "    (none)"
    return f"""Evidence pack: change management, {report.quarter}
Policy: {report.policy}
Generated: {cell_text(report.generated_at)}

Contents
  README.txt     this file
  report.html    the quarterly report (open it in a browser; it works offline)
  chain.json     the change log's hash-chain verification when the report was made
  changes/       one JSON file per change: its record, approvals, gates, deployments,
                 verifications, incidents, and every event with its hash (ISO 8601 times)
{listing}

Checking the change log
  The report was made from a change log whose head was event {seq} with hash
    {head}
  (verified: {cell_text(chain.get("ok"))}; {cell_text(chain.get("checked"))} events checked).
  On a machine with access to the change log, run

      changeflow log verify

  It recomputes every hash and prints "chain ok: N event(s) verified, head event S,
  head hash H". H must equal the hash above. If events were recorded since, the head has
  moved on, and the event with seq {seq} must still carry that hash
  (`changeflow log export <change_id>` prints a change's events with their hashes).
"""


PACK_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
"""Each change's JSON in the pack: indented, keys sorted (the same evidence, the same bytes)."""


def write_evidence_pack(report: QuarterlyReport, evidence: Mapping[str, Mapping[str, Any]],
                        out: Path) -> Path:
    """Write a zip at `out` with the report, chain.json, one JSON per change and a README.

    Members come in a fixed order (README.txt, report.html, chain.json, then
    changes/<change_id>.json by change ID) with fixed timestamps, so the same inputs give
    the same bytes.
    """
    ids = sorted(evidence)
    names = [f"changes/{file_name(cid)}.json" for cid in ids]
    if len(set(names)) != len(names):
        raise ValueError("two change IDs map to the same file name in the evidence pack")
    head = {"README.txt": _readme(report, names), "report.html": render_html(report),
            "chain.json": chain_json(report)}
    stamp = max(report.generated_at.timetuple()[:6], (1980, 1, 1, 0, 0, 0))

    def member(pack: zipfile.ZipFile, name: str, content: str | bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        pack.writestr(info, content.encode("utf-8") if isinstance(content, str) else content)

    def write(path: Path) -> None:
        # One change at a time: a quarter of 100,000 changes never sits in memory at once.
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as pack:
            for name, text in head.items():
                member(pack, name, text)
            for cid, name in zip(ids, names, strict=True):
                member(pack, name, orjson.dumps(evidence[cid], default=json_default,
                                                option=PACK_JSON) + b"\n")

    return replace_atomically(out, write)


def _index(evidence: Mapping[str, Mapping[str, Any]], sampled: Sequence[str], seed: str,
           population: int | None) -> str:
    how = [("Changes sampled", escape(str(len(sampled))))]
    if population is not None:
        how.append(("Population", escape(f"{population} changes")))
    if seed:
        how.append(("Seed", f"<code>{escape(seed)}</code>"))
        how.append(("Method", "<code>random.Random(seed).sample()</code> over the sorted "
                              "change IDs; the same IDs and seed draw the same sample"))
    items = []
    for cid in sampled:
        record = evidence[cid].get("record") or {}
        href = escape(quote(f"{file_name(cid)}.html"))
        detail = " · ".join(cell_text(record.get(k)) for k in ("category", "outcome", "summary"))
        items.append(f"<li><a href=\"{href}\">{escape(cid)}</a>: {escape(detail)}</li>")
    body = ("<header><h1>Evidence sample</h1></header>\n" + definitions(how)
            + "\n<h2>Sampled changes</h2>\n<ul>" + "".join(items) + "</ul>")
    return document("Evidence sample", body)


def write_sample(evidence: Mapping[str, Mapping[str, Any]], sampled: Sequence[str],
                 out_dir: Path, *, seed: str = "", population: int | None = None) -> list[Path]:
    """Write one page per sampled change (`<change_id>.html`) and an `index.html`.

    Args:
        evidence: evidence dicts by change ID (see `change_page`).
        sampled: the change IDs drawn, e.g. by `sample_changes`.
        out_dir: where to write (created if missing).
        seed: the seed the sample was drawn with, shown on the index.
        population: how many changes it was drawn from, shown on the index.

    Returns:
        The change pages in `sampled` order, then the index.

    Raises:
        KeyError: a sampled change has no evidence (nothing is written).
    """
    missing = [cid for cid in sampled if cid not in evidence]
    if missing:
        raise KeyError(f"no evidence for sampled change(s): {', '.join(missing)}")
    pages = [write_text(out_dir / f"{file_name(cid)}.html", change_page(evidence[cid]))
             for cid in sampled]
    return [*pages, write_text(out_dir / "index.html",
                               _index(evidence, sampled, seed, population))]
