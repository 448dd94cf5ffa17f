"""Evidence for auditors: a reproducible sample of changes, a page per change, a zip pack.

An auditor tests controls on a sample. The sample is drawn with `random.Random(seed)`
over the sorted change IDs, so anyone holding the IDs and the seed draws the same one.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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
        dicts_table(rows("gates"), ("gate", "status", "source", "reason"),
                    empty="No gates recorded."),
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


def _readme(report: QuarterlyReport, changes: Sequence[str], chain: PackChain | None) -> str:
    verified = report.chain
    seq, head = cell_text(verified.get("head_seq")), cell_text(verified.get("head_hash"))
    listing = "\n".join(f"    {name}" for name in changes) or "    (none)"
    signed = chain is not None and chain.sign is not None and chain.checkpoint is not None
    standing = (f"signed with chain key {chain.key_id!r}" if signed and chain else
                "NOT signed: the change log did not verify when the pack was made, so "
                "nothing in it vouches for the chain")
    return f"""Evidence pack: change management, {report.quarter}
Policy: {report.policy}
Generated: {cell_text(report.generated_at)}

Contents
  README.txt          this file
  report.html         the quarterly report (open it in a browser; it works offline)
  chain.json          the change log's verification when the report was made
  chain/events.jsonl  every event of the change log from its start up to the head below,
                      exactly as hashed (see "Encoding" in changeflow's docs/change-log.md)
  chain/start.json    where the kept chain starts (the genesis, or a retention purge's
                      checkpoint)
  chain/checkpoint.json  the head, signed (Ed25519)
  chain/anchors.jsonl the heads published before it, each signed
  chain/public-keys.json  the chain keys' public halves, by key id
  config/             policy.yaml, roster.yaml and services.yaml in force
  changes/            one JSON file per change: its record, approvals, gates, deployments,
                      verifications, incidents, and every event with its hash (ISO 8601 times)
{listing}
  manifest.json       the sha256 of every other file, and the head
  manifest.sig        the manifest's Ed25519 signature

The head
  The report was made from a change log whose head was event {seq} with hash
    {head}
  (verified: {cell_text(verified.get("ok"))}; {cell_text(verified.get("checked"))} events
  checked). This pack is {standing}.

Checking the pack, with nothing but Python 3 and the public key
  Get the chain key's public key from its keeper (`changeflow log public-key` prints it),
  not from this pack, and run changeflow's own tools/verify_pack.py:

      python3 verify_pack.py evidence-{report.quarter}.zip --public-key ID:KEY

  It checks the manifest's signature and every file's hash, recomputes every event's hash
  and its link to the one before, checks that times never go back, that the chain ends at
  the signed head, that every anchor is signed and still held, and that every event in
  changes/ is the chain's. It exits 0 and prints "pack verified" or exits 1 naming the
  first thing that does not hold.

Checking against the live change log
  On a machine with access to the change log, run

      changeflow log verify --expect {seq}:{head}

  It checks the whole chain and that event {seq} still carries that hash.
"""


@dataclass(frozen=True)
class PackChain:
    """What makes a pack verify alone: the chain up to the head, signed, and its setting.

    Attributes:
        start: (seq, hash) the kept chain starts from: (0, genesis), or a purge's checkpoint.
        events: every event from the start up to the head, as `SqlChangeLog.export` gives
            them (the time and payload as their hashed text), streamed.
        head: (seq, hash) of the last of `events`: the head the report verified.
        checkpoint: the head as a signed anchor line; None when the chain did not verify.
        anchors: anchor lines published before, up to the head.
        public_keys: key id -> Ed25519 public key (base64).
        configs: file name -> bytes of the configuration in force.
        sign: signs bytes with the current chain key (base64); None to leave it unsigned.
        key_id: the signing key's id.
    """

    start: tuple[int, str]
    events: Iterable[Mapping[str, Any]]
    head: tuple[int, str]
    checkpoint: str | None
    anchors: Sequence[str]
    public_keys: Mapping[str, str]
    configs: Mapping[str, bytes]
    sign: Callable[[bytes], str] | None
    key_id: str


PACK_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
"""Each change's JSON in the pack: indented, keys sorted (the same evidence, the same bytes)."""

PACK_FORMAT = "changeflow-pack-v1"


def _line(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8") + b"\n"


def write_evidence_pack(report: QuarterlyReport, evidence: Mapping[str, Mapping[str, Any]],
                        out: Path, chain: PackChain | None = None) -> Path:
    """Write a zip at `out`: the report, one JSON per change, the chain, and a README.

    Members come in a fixed order (README.txt, report.html, chain.json, the chain and
    configuration, changes/<change_id>.json by change ID, then the manifest and its
    signature) with fixed timestamps, so the same inputs give the same bytes.

    Raises:
        ValueError: two change IDs share a file name, or the chain's events do not end at
            its head (nothing is written).
    """
    ids = sorted(evidence)
    names = [f"changes/{file_name(cid)}.json" for cid in ids]
    if len(set(names)) != len(names):
        raise ValueError("two change IDs map to the same file name in the evidence pack")

    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            pack = _Pack(zipped, max(report.generated_at.timetuple()[:6], (1980, 1, 1, 0, 0, 0)))
            pack.add("README.txt", _readme(report, names, chain))
            pack.add("report.html", render_html(report))
            pack.add("chain.json", chain_json(report))
            if chain is not None:
                pack.add_chain(chain)
            # One change at a time: a quarter of 100,000 changes never sits in memory at once.
            for cid, name in zip(ids, names, strict=True):
                pack.add(name, orjson.dumps(evidence[cid], default=json_default,
                                            option=PACK_JSON) + b"\n")
            if chain is not None:
                pack.add_manifest(report, chain)

    return replace_atomically(out, write)


class _Pack:
    """Members written into an evidence pack, each one's sha256 kept for the manifest."""

    def __init__(self, zipped: zipfile.ZipFile, stamp: tuple[int, ...]) -> None:
        self.zipped = zipped
        self.stamp = stamp
        self.digests: dict[str, str] = {}

    def _info(self, name: str) -> zipfile.ZipInfo:
        entry = zipfile.ZipInfo(name, date_time=self.stamp)  # type: ignore[arg-type]
        entry.compress_type = zipfile.ZIP_DEFLATED
        entry.external_attr = 0o644 << 16
        return entry

    def add(self, name: str, content: str | bytes, listed: bool = True) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        if listed:
            self.digests[name] = hashlib.sha256(data).hexdigest()
        self.zipped.writestr(self._info(name), data)

    def add_chain(self, chain: PackChain) -> None:
        """The events streamed (a long chain never sits in memory), then what vouches."""
        digest, last = hashlib.sha256(), chain.start
        with self.zipped.open(self._info("chain/events.jsonl"), "w", force_zip64=True) as out:
            for event in chain.events:
                line = _line(dict(event))
                digest.update(line)
                out.write(line)
                last = (int(event["seq"]), str(event["hash"]))
        if last != chain.head:
            raise ValueError(f"the chain's events end at event {last[0]}, not at its head "
                             f"{chain.head[0]}")
        self.digests["chain/events.jsonl"] = digest.hexdigest()
        self.add("chain/start.json", _line({"seq": chain.start[0], "hash": chain.start[1]}))
        if chain.checkpoint is not None:
            self.add("chain/checkpoint.json", chain.checkpoint + "\n")
        self.add("chain/anchors.jsonl", "".join(f"{a}\n" for a in chain.anchors))
        self.add("chain/public-keys.json", _line(dict(chain.public_keys)))
        for name, data in sorted(chain.configs.items()):
            self.add(f"config/{name}", data)

    def add_manifest(self, report: QuarterlyReport, chain: PackChain) -> None:
        """The manifest of every member's hash, signed when the chain verified."""
        text = json.dumps({"format": PACK_FORMAT, "quarter": str(report.quarter),
                           "head": {"seq": chain.head[0], "hash": chain.head[1]},
                           "key_id": chain.key_id, "files": self.digests},
                          indent=2, sort_keys=True) + "\n"
        self.add("manifest.json", text, listed=False)
        if chain.sign is not None and chain.checkpoint is not None:
            self.add("manifest.sig", chain.sign(text.encode()) + "\n", listed=False)


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
