"""The quarterly report on disk: HTML, one CSV per table, one XLSX workbook, chain.json.

Every file is written under a temporary name in the same directory and moved into place
with `os.replace`, so a reader (or a failed run) never sees a half-written file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reporting.html import render_html, with_index
from reporting.model import QuarterlyReport

SHEET_NAME_LIMIT = 31
LIST_SEPARATOR = "; "


def json_default(value: Any) -> Any:
    """`json.dumps` fallback: ISO instants and dates, numpy scalars, sets; else `str`."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def replace_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write` on a temporary file next to `path`, then move it onto `path`.

    On any failure the temporary file is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        temporary.chmod(0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    def write(temporary: Path) -> None:
        temporary.write_text(text, encoding="utf-8")

    return replace_atomically(path, write)


def chain_json(report: QuarterlyReport) -> str:
    """The change log's verification as JSON, with the report it belongs to."""
    document = {**report.chain, "report": {"quarter": str(report.quarter),
                                           "policy": report.policy,
                                           "generated_at": report.generated_at}}
    return json.dumps(document, default=json_default, indent=2, ensure_ascii=False) + "\n"


def _joined(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return LIST_SEPARATOR.join(str(v) for v in items)
    if isinstance(value, dict):
        return json.dumps(value, default=json_default, sort_keys=True, ensure_ascii=False)
    return value


def _iso(value: Any) -> Any:
    if isinstance(value, datetime) and not pd.isna(value):
        return (value.astimezone(UTC) if value.tzinfo is not None else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _aware(column: pd.Series) -> bool:
    """True for a column of timezone-aware instants (datetime64 with a zone, or objects)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return True
    if not pd.api.types.is_object_dtype(column):
        return False
    values = column.dropna()
    return len(values) > 0 and all(isinstance(v, datetime) and v.tzinfo is not None
                                   for v in values)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""How a cell that a spreadsheet would run as a formula begins."""


def inert(value: Any) -> Any:
    """A text cell a spreadsheet shows as text: one that could start a formula gets a `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as written to CSV: index as columns, lists joined, instants ISO 8601 in UTC.

    Text that a spreadsheet would take for a formula (`=HYPERLINK(...)` in a ticket's
    summary) is written with a leading `'`, so that it opens as text.
    """
    flat = with_index(frame).copy()
    flat.columns = pd.Index([str(c) for c in flat.columns])
    for name in flat.columns:
        column = flat[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            if isinstance(column.dtype, pd.DatetimeTZDtype):
                column = column.dt.tz_convert("UTC")
            flat[name] = column.astype(object).map(_iso).astype(object)
        elif pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            flat[name] = column.map(_joined).map(_iso).map(inert).astype(object)
    return flat


def excel_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as written to Excel, which has no time zones or lists.

    Aware instants become naive UTC and their header says so (`deployed_at (UTC)`); lists
    are joined with "; ".
    """
    flat = with_index(frame)
    columns: dict[str, pd.Series] = {}
    for name, column in flat.items():
        if _aware(column):
            instants = pd.to_datetime(column, utc=True).dt.tz_localize(None)
            columns[f"{name} (UTC)"] = instants
        elif pd.api.types.is_object_dtype(column):
            columns[str(name)] = column.map(_joined)
        else:
            columns[str(name)] = column
    return pd.DataFrame(columns, index=flat.index)


def sheet_names(names: list[str]) -> dict[str, str]:
    """Excel-safe, unique sheet names (at most 31 characters, no []:*?/ or backslash)."""
    found: dict[str, str] = {}
    for name in names:
        base = re.sub(r"[\[\]:*?/\\]", "_", name)[:SHEET_NAME_LIMIT] or "sheet"
        candidate, n = base, 2
        while candidate.lower() in {v.lower() for v in found.values()}:
            suffix = f"~{n}"
            candidate, n = base[:SHEET_NAME_LIMIT - len(suffix)] + suffix, n + 1
        found[name] = candidate
    return found


def _write_workbook(tables: dict[str, pd.DataFrame], path: Path) -> None:
    names = sheet_names(list(tables))
    # XlsxWriter (several times openpyxl's speed), with every string written as text: a
    # ticket's "=HYPERLINK(...)" is never a formula, nor a link.
    options = {"strings_to_formulas": False, "strings_to_urls": False}
    with pd.ExcelWriter(path, engine="xlsxwriter",
                        engine_kwargs={"options": options}) as writer:
        for name, frame in tables.items():
            excel_frame(frame).to_excel(writer, sheet_name=names[name], index=False)


def write_report(report: QuarterlyReport, out_dir: Path) -> dict[str, Path]:
    """Write the report's files into `out_dir` (created if missing).

    Files: `report.html`; `<table>.csv` for each of `report.tables()` (UTF-8, ISO 8601
    instants in UTC, lists joined with "; "); `report.xlsx`, one sheet per table; and
    `chain.json`, the change log's verification.

    Returns:
        The files written, by file name, in that order.
    """
    html = render_html(report)
    tables = report.tables()
    written = {"report.html": write_text(out_dir / "report.html", html)}
    for name, frame in tables.items():
        text = csv_frame(frame).to_csv(index=False, lineterminator="\n")
        written[f"{name}.csv"] = write_text(out_dir / f"{name}.csv", text)
    written["report.xlsx"] = replace_atomically(
        out_dir / "report.xlsx", lambda p: _write_workbook(tables, p))
    written["chain.json"] = write_text(out_dir / "chain.json", chain_json(report))
    return written
