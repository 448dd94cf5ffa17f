"""The quarterly report as one self-contained HTML page: inline CSS, inline SVG charts.

Every piece of text is escaped (ticket text is untrusted); the charts are drawn with
matplotlib's object-oriented API on an Agg canvas, so no pyplot state is created and no
figure outlives its chart. The table helpers here are shared with the evidence pages.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from reporting.model import SECTIONS, QuarterlyReport

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

NONE = "—"
CATEGORY_COLOURS = {"standard": "#4c78a8", "normal": "#72b7b2", "major": "#f58518",
                    "emergency": "#e45756"}
OTHER_COLOURS = ("#54a24b", "#b279a2", "#9d755d", "#bab0ac", "#eeca3b")
GOOD, BAD, INK = "#2e7d32", "#c62828", "#263238"
CHART_RC: dict[RcKeyType, Any] = {"svg.fonttype": "none", "text.parse_math": False, "font.size": 9,
            "axes.spines.top": False, "axes.spines.right": False}
PERCENT_UNITS = {"ratio", "fraction", "share"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;
 margin:0;background:#f5f7fa}
main{max-width:1180px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:26px;margin:0 0 8px}h2{font-size:20px;margin:32px 0 8px;padding-top:8px;
 border-top:2px solid #d9e2ec}h3{font-size:15px;margin:20px 0 6px;color:#334e68}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
dl.meta dt{font-weight:600;color:#486581}dl.meta dd{margin:0}
code,.hash{font-family:ui-monospace,"SFMono-Regular",Menlo,monospace;font-size:12px;
 overflow-wrap:anywhere}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:6px 0 12px;font-size:12.5px;min-width:40%}
th,td{border:1px solid #d9e2ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f8;font-weight:600}tr:nth-child(even) td{background:#fafcfe}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.long{min-width:18em}pre{white-space:pre-wrap;margin:0;font-size:12px}
.ok{color:#2e7d32;font-weight:700}.bad{color:#c62828;font-weight:700}
.warn{color:#b26a00;font-weight:700}
.alert{border:2px solid #c62828;background:#fdecea;padding:10px 14px;margin:12px 0;
 font-size:15px}
.empty{font-size:16px;font-weight:600;background:#fff8e1;border-left:4px solid #f0b429;
 padding:8px 12px}
.none,.note{color:#52606d;font-style:italic}
figure{margin:8px 0 16px}figure svg{max-width:100%;height:auto}
figcaption{font-size:12px;color:#52606d}
nav ol{columns:2;margin:8px 0;padding-left:20px}
ul.glance{margin:6px 0;padding-left:20px}
@media print{body{background:#fff}main{padding:0}.scroll{overflow:visible}
 h2{break-before:auto}table,figure{break-inside:avoid}}
"""


def document(title: str, body: str) -> str:
    """A complete HTML5 document around `body` (already HTML) with the house CSS inline."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def heading(name: object) -> str:
    """A column name as a header: `change_id` -> `Change ID`."""
    words = str(name).replace("_", " ").split(" ")
    text = " ".join("ID" if w.lower() == "id" else w for w in words)
    return text[:1].upper() + text[1:]


def moment(value: datetime) -> str:
    """A readable instant; aware values in UTC, seconds only when they are not zero."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    shown = value.strftime("%Y-%m-%d %H:%M:%S" if value.second or value.microsecond
                           else "%Y-%m-%d %H:%M")
    return f"{shown} UTC" if value.tzinfo is not None else shown


def number(value: float) -> str:
    """A number with at most two decimals and no trailing zeros."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def percent(value: float) -> str:
    """A fraction (0-1) as a percentage."""
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


def cell_text(value: Any, *, as_percent: bool = False) -> str:
    """Plain (unescaped) text for one cell: dates readable, yes/no, lists joined."""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(cell_text(v) for v in items) or NONE
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {cell_text(v)}" for k, v in value.items()) or NONE
    if isinstance(value, str):
        return value
    if value is None or (not isinstance(value, np.ndarray) and bool(pd.isna(value))):
        return NONE
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (timedelta, pd.Timedelta)):
        return f"{number(value.total_seconds() / 60)} min"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return percent(float(value)) if as_percent else number(float(value))
    return str(value)


def _cell(value: Any, *, as_percent: bool, numeric: bool, mono: bool) -> str:
    text = cell_text(value, as_percent=as_percent)
    if isinstance(value, Mapping) or (isinstance(value, str) and "\n" in value):
        return f"<td><pre>{escape(text)}</pre></td>"
    css = (" class=\"num\"" if numeric else " class=\"hash\"" if mono
           else " class=\"long\"" if len(text) > 60 else "")
    return f"<td{css}>{escape(text)}</td>"


def rows_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
               percent_columns: Collection[str] = (), caption: str = "",
               numeric: Collection[str] = (), mono: Collection[str] = ()) -> str:
    """An HTML table (escaped) of `rows`, each a sequence of values in `columns` order.

    `percent_columns` hold fractions shown as percentages, `numeric` ones are right
    aligned, `mono` ones (hashes) set in a fixed-width font.
    """
    head = "".join(("<th scope=\"col\" class=\"num\">" if c in numeric else "<th scope=\"col\">")
                   + f"{escape(heading(c))}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(
        _cell(v, as_percent=c in percent_columns, numeric=c in numeric, mono=c in mono)
        for c, v in zip(columns, row, strict=True)) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f"<div class=\"scroll\"><table>{cap}<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}\n</tbody></table></div>")


def with_index(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a meaningful index (named, or not integers) turned into columns."""
    named = any(n is not None for n in frame.index.names)
    labelled = len(frame.index) > 0 and not pd.api.types.is_integer_dtype(frame.index)
    return frame.reset_index() if named or labelled else frame


def frame_table(frame: pd.DataFrame, *, empty: str, percent_columns: Collection[str] = (),
                columns: Sequence[str] | None = None) -> str:
    """A DataFrame as an HTML table, or the `empty` sentence when it has no rows."""
    if frame.empty:
        return f"<p class=\"none\">{escape(empty)}</p>"
    flat = with_index(frame).rename(columns=str)
    names = list(flat.columns)
    names = [c for c in columns if c in names] if columns is not None else names
    numeric = {c for c in names if pd.api.types.is_numeric_dtype(flat[c])
               and not pd.api.types.is_bool_dtype(flat[c])}
    rows = list(flat[names].itertuples(index=False, name=None))
    return rows_table(names, rows, percent_columns=percent_columns, numeric=numeric)


def dicts_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *,
                empty: str, mono: Collection[str] = ()) -> str:
    """Dicts as an HTML table: `columns` first, then any other keys they carry."""
    if not rows:
        return f"<p class=\"none\">{escape(empty)}</p>"
    extra = sorted({k for r in rows for k in r if k not in columns})
    names = [*columns, *extra]
    return rows_table(names, [[r.get(c) for c in names] for r in rows], mono=mono)


def definitions(items: Sequence[tuple[str, str]]) -> str:
    """A definition list of (label, HTML value) pairs; labels are escaped here."""
    body = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f"<dl class=\"meta\">{body}</dl>"


# --- charts -------------------------------------------------------------------------


def _figure(height: float) -> Figure:
    figure = Figure(figsize=(7.5, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _svg(figure: Figure, salt: str) -> str:
    """The figure as an `<svg>` element (XML prolog dropped; ids unique by `salt`)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):].strip()


def _month_label(month: str) -> str:
    try:
        return datetime.strptime(month, "%Y-%m").strftime("%b %Y")
    except ValueError:
        return month


def chart_by_month(report: QuarterlyReport) -> str | None:
    """Stacked bars: changes per month by category, or None when there is nothing to draw."""
    frame = report.inventory.get("by_month")
    if frame is None or frame.empty:
        return None
    if "month" in frame.columns:
        frame = frame.set_index("month")
    counts = frame.apply(pd.to_numeric, errors="coerce").fillna(0)
    counts.index = pd.Index([str(m) for m in counts.index])
    extra = sorted(set(counts.index) - set(report.quarter.months()))
    counts = counts.reindex([*report.quarter.months(), *extra], fill_value=0)
    if float(counts.to_numpy(dtype=float).sum()) == 0:
        return None
    with matplotlib.rc_context(CHART_RC):
        figure = _figure(3.2)
        axes = figure.add_subplot()
        labels = [_month_label(m) for m in counts.index]
        bottom = np.zeros(len(counts))
        for i, category in enumerate(counts.columns):
            values = counts[category].to_numpy(dtype=float)
            colour = CATEGORY_COLOURS.get(str(category), OTHER_COLOURS[i % len(OTHER_COLOURS)])
            axes.bar(labels, values, bottom=bottom, label=str(category), color=colour)
            bottom += values
        axes.set_ylabel("changes")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend(title="category", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False,
                    reverse=True)
        return _svg(figure, "by-month")


def chart_controls(report: QuarterlyReport) -> str | None:
    """Horizontal bars: each control's pass rate on a 0-100% axis; None when no rate."""
    frame = report.controls
    if report.empty or frame.empty:
        return None
    rates = pd.to_numeric(frame["rate"], errors="coerce")
    if not rates.notna().any():
        return None
    with matplotlib.rc_context(CHART_RC):
        figure = _figure(0.9 + 0.34 * len(frame))
        axes = figure.add_subplot()
        y = np.arange(len(frame))
        shown = (rates.fillna(0) * 100).to_numpy(dtype=float)
        axes.barh(y, shown, color=[GOOD if r >= 100 else BAD for r in shown], height=0.6)
        for i, (rate, passed, applicable) in enumerate(
                zip(rates, frame["passed"], frame["applicable"], strict=True)):
            if math.isnan(rate):
                axes.text(1, i, "n/a (nothing applied)", va="center", color="#52606d")
                continue
            text = f"{percent(rate)} ({cell_text(passed)}/{cell_text(applicable)})"
            inside = rate * 100 > 55
            axes.text(rate * 100 - 1 if inside else rate * 100 + 1, i, text, va="center",
                      ha="right" if inside else "left", color="white" if inside else INK)
        axes.set_yticks(y, [str(c) for c in frame["control"]])
        axes.invert_yaxis()
        axes.set_xlim(0, 100)
        axes.xaxis.set_major_formatter(PercentFormatter(100))
        axes.set_xlabel("passed / applicable")
        return _svg(figure, "controls")


def chart_rollbacks(report: QuarterlyReport) -> str | None:
    """Bars: minutes each rollback took, with its estimate marked; None without rollbacks."""
    frame = report.rollbacks
    if frame.empty:
        return None
    minutes = pd.to_numeric(frame["rollback_minutes"], errors="coerce").to_numpy(dtype=float)
    estimate = pd.to_numeric(frame["estimate_minutes"], errors="coerce").to_numpy(dtype=float)
    if np.isnan(minutes).all():
        return None
    if len(frame) > CHART_BARS:
        return _rollback_histogram(minutes, estimate)
    with matplotlib.rc_context(CHART_RC):
        figure = _figure(3.2)
        axes = figure.add_subplot()
        x = np.arange(len(frame))
        late = [not (m <= e) if not math.isnan(e) else False
                for m, e in zip(minutes, estimate, strict=True)]
        axes.bar(x, np.nan_to_num(minutes), width=0.6, color=[BAD if lt else GOOD for lt in late],
                 label="rollback took")
        axes.hlines(estimate, x - 0.4, x + 0.4, colors=INK, linestyles="dashed",
                    label="estimate")
        axes.set_xticks(x, [str(c) for c in frame["change_id"]],
                        rotation=30 if len(frame) > 6 else 0, ha="right" if len(frame) > 6
                        else "center")
        axes.set_xlim(-0.6, max(len(frame), 4) - 0.4)
        axes.set_ylabel("minutes")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        return _svg(figure, "rollbacks")


CHART_BARS = 40
"""Up to this many rollbacks get a bar each; more are drawn as a histogram."""


def _rollback_histogram(minutes: np.ndarray, estimate: np.ndarray) -> str:
    """Many rollbacks: how many took how long, beside how many overran their estimate."""
    within = np.nan_to_num(minutes) <= np.where(np.isnan(estimate), np.inf, estimate)
    with matplotlib.rc_context(CHART_RC):
        figure = _figure(3.2)
        axes = figure.add_subplot()
        bins = np.histogram_bin_edges(np.nan_to_num(minutes), bins=20)
        axes.hist([np.nan_to_num(minutes)[within], np.nan_to_num(minutes)[~within]],
                  bins=list(bins),
                  stacked=True, color=[GOOD, BAD], label=["within the estimate",
                                                          "over the estimate"])
        axes.set_xlabel("minutes the rollback took")
        axes.set_ylabel("rollbacks")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        return _svg(figure, "rollbacks")


def figure_html(svg: str | None, caption: str, empty: str) -> str:
    """A chart with its caption, or the empty-state line instead."""
    if svg is None:
        return f"<p class=\"none\">{escape(empty)}</p>"
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


# --- the report ---------------------------------------------------------------------

CHANGE_COLUMNS = ("change_id", "category", "reclassified_from", "service", "version", "summary",
                  "author", "approvers", "submitted_at", "deployed_at", "month", "outcome",
                  "incidents")


def present(value: Any) -> bool:
    """True for a value that says something: a non-empty text or list, a non-zero number."""
    if isinstance(value, str):
        return value.strip() != ""
    if isinstance(value, (list, tuple, set, frozenset, Mapping)):
        return len(value) > 0
    if value is None or (not isinstance(value, np.ndarray) and bool(pd.isna(value))):
        return False
    return bool(value)


def _chain_head(chain: Mapping[str, Any]) -> str:
    return (f"event {escape(cell_text(chain.get('head_seq')))}, hash "
            f"<code class=\"hash\">{escape(cell_text(chain.get('head_hash')))}</code>")


def _chain_status(chain: Mapping[str, Any]) -> str:
    if chain.get("ok") is True:
        return "<span class=\"ok\">OK: the hash chain verified</span>"
    return "<span class=\"bad\">BROKEN: the hash chain did not verify</span>"


def _alert(chain: Mapping[str, Any]) -> str:
    if chain.get("ok") is True:
        return ""
    problem = cell_text(chain.get("problem") or "no reason given")
    return (f"<p class=\"alert\" role=\"alert\"><strong>Change log integrity BROKEN:</strong> "
            f"{escape(problem)}</p>")


def _glance(report: QuarterlyReport) -> str:
    q = report.quarter
    if report.empty:
        return f"<p class=\"empty\">No changes in {escape(str(q))}.</p>"
    counts = report.changes["category"].map(str).value_counts()
    lines = [f"{len(report.changes)} changes: "
             + ", ".join(f"{n} {c}" for c, n in counts.items())]
    if not report.controls.empty:
        passed = pd.to_numeric(report.controls["passed"], errors="coerce").sum()
        applicable = pd.to_numeric(report.controls["applicable"], errors="coerce").sum()
        share = f" ({percent(passed / applicable)})" if applicable else ""
        lines.append(f"Controls: {number(passed)} of {number(applicable)} checks passed{share}; "
                     f"{len(report.exceptions)} exception(s)")
    lines.append(f"Emergency changes: {len(report.emergencies)}")
    if not report.rollbacks.empty:
        late = (~report.rollbacks["within_estimate"].map(present)).sum()
        lines.append(f"Rollbacks: {len(report.rollbacks)} ({late} over their estimate)")
    else:
        lines.append("Rollbacks: 0")
    lines.append(f"Prohibited-practice findings: {len(report.findings)}")
    return "<ul class=\"glance\">" + "".join(f"<li>{escape(t)}</li>" for t in lines) + "</ul>"


def _header(report: QuarterlyReport, title: str) -> str:
    q = report.quarter
    months = q.months()
    items = [("Policy", escape(report.policy)),
             ("Quarter", escape(f"{q} ({_month_label(months[0])} to {_month_label(months[-1])})")),
             ("Generated", escape(cell_text(report.generated_at))),
             ("Change log head", _chain_head(report.chain)),
             ("Change log integrity", _chain_status(report.chain))]
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    toc = "".join(f"<li><a href=\"#{escape(_anchor(s))}\">{escape(s)}</a></li>" for s in SECTIONS)
    return (f"<header>\n<h1>{escape(title)}</h1>\n{definitions(items)}\n{_alert(report.chain)}\n"
            f"{_glance(report)}\n" + (f"<ul class=\"note\">{notes}</ul>\n" if notes else "")
            + f"<nav aria-label=\"Sections\"><ol>{toc}</ol></nav>\n</header>")


HTML_ROWS = 1000
"""Rows of a long table shown in the HTML; every row is in its CSV and in the workbook."""


def long_table(frame: pd.DataFrame, csv_name: str, **table: Any) -> str:
    """A table of at most `HTML_ROWS` rows, saying where all of them are when cut."""
    note = "" if len(frame) <= HTML_ROWS else (
        f"<p class=\"note\">The first {HTML_ROWS:,} of {len(frame):,} rows; all of them "
        f"are in {escape(csv_name)} and report.xlsx.</p>")
    return note + frame_table(frame.head(HTML_ROWS), **table)


def _inventory(report: QuarterlyReport) -> str:
    q = report.quarter
    if report.empty:
        return f"<p class=\"empty\">No changes in {escape(str(q))}.</p>"
    empty = pd.DataFrame()
    inv = report.inventory
    return "\n".join([
        figure_html(chart_by_month(report), "Changes per month, by category.",
                    "No monthly counts to chart."),
        "<h3>By category and outcome</h3>",
        frame_table(inv.get("by_category_outcome", empty), empty="No counts."),
        "<h3>By service</h3>", frame_table(inv.get("by_service", empty), empty="No counts."),
        "<h3>By month</h3>", frame_table(inv.get("by_month", empty), empty="No counts."),
        "<h3>All changes</h3>",
        long_table(report.changes, "changes.csv", empty="No changes.",
                   columns=CHANGE_COLUMNS)])


def _controls(report: QuarterlyReport) -> str:
    q = escape(str(report.quarter))
    chart = "" if report.controls.empty else figure_html(
        chart_controls(report), "Pass rate per control (passed / applicable).",
        f"No control applied to a change in {q}.")
    return "\n".join([
        chart,
        frame_table(report.controls, empty="No controls were evaluated.",
                    percent_columns={"rate"}),
        "<h3>Control exceptions</h3>",
        long_table(report.exceptions, "control_exceptions.csv",
                   empty=f"No control exceptions in {q}.")])


def _rollbacks(report: QuarterlyReport) -> str:
    q = escape(str(report.quarter))
    changes = report.changes
    with_incidents = (changes[changes["incidents"].map(present)] if not changes.empty
                      else changes)
    chart = "" if report.rollbacks.empty else figure_html(
        chart_rollbacks(report), "Minutes each rollback took; dashed: its estimate.",
        "No rollback times to chart.")
    return "\n".join([
        chart,
        long_table(report.rollbacks, "rollbacks.csv", empty=f"No rollbacks in {q}."),
        "<h3>Changes linked to incidents</h3>",
        frame_table(with_incidents, empty=f"No change in {q} is linked to an incident.",
                    columns=("change_id", "service", "summary", "outcome", "incidents"))])


def _findings(report: QuarterlyReport) -> str:
    if report.findings.empty:
        note = report.findings_note or f"No prohibited-practice findings in {report.quarter}."
        return f"<p class=\"note\">{escape(note)}</p>"
    return frame_table(report.findings, empty="")


def metric_value(value: Any, unit: Any) -> str:
    """A metric's value with its unit; a `ratio`/`fraction`/`share` (0-1) as a percentage."""
    unit_text = "" if not present(unit) else str(unit)
    if unit_text.lower() in PERCENT_UNITS and isinstance(value, (int, float, np.number)):
        return cell_text(value, as_percent=True)
    if unit_text in ("%", "percent") and isinstance(value, (int, float, np.number)):
        return f"{cell_text(value)}%"
    text = cell_text(value)
    return f"{text} {unit_text}" if unit_text and text != NONE else text


def _metrics(report: QuarterlyReport) -> str:
    frame = report.metrics
    if frame.empty:
        return "<p class=\"none\">No delivery metrics.</p>"
    rows = [[m, metric_value(v, u), d] for m, v, u, d in zip(
        frame["metric"], frame["value"], frame["unit"], frame["definition"], strict=True)]
    return rows_table(["metric", "value", "definition"], rows, numeric={"value"})


def _integrity(report: QuarterlyReport) -> str:
    chain = report.chain
    items = [("Status", _chain_status(chain)),
             ("Events checked", escape(cell_text(chain.get("checked")))),
             ("Head event (seq)", escape(cell_text(chain.get("head_seq")))),
             ("Head hash", f"<code class=\"hash\">{escape(cell_text(chain.get('head_hash')))}"
                           "</code>"),
             ("Events in this quarter", escape(cell_text(chain.get("quarter_events"))))]
    if chain.get("ok") is not True:
        items.append(("Problem", f"<strong class=\"bad\">"
                                 f"{escape(cell_text(chain.get('problem')))}</strong>"))
    check = ("<p>To check: <code>changeflow log verify</code> prints the head event and hash; "
             "they must match the ones above (if events were added since, the event with this "
             "seq must still carry this hash).</p>")
    return "\n".join([_alert(chain), definitions(items), check])


def _anchor(name: str) -> str:
    return name.lower().replace(" ", "-")


def render_html(report: QuarterlyReport) -> str:
    """The whole report as one self-contained HTML document.

    A header (policy, generated time, the chain's head hash, a summary), then one `<h2>`
    per entry of `SECTIONS`, in order. Works from any `QuarterlyReport` with the
    documented columns, including a quarter without changes: every heading is still
    there, with an empty-state line where a chart or table would be.
    """
    title = f"Change management report {report.quarter}"
    bodies = (_inventory(report), _controls(report),
              long_table(report.emergencies, "emergencies.csv",
                         empty=f"No emergency changes in {report.quarter}."),
              _rollbacks(report), _findings(report), _metrics(report), _integrity(report))
    parts = [_header(report, title)]
    for name, body in zip(SECTIONS, bodies, strict=True):
        parts.append(f"<section id=\"{escape(_anchor(name))}\">\n<h2>{escape(name)}</h2>\n"
                     f"{body}\n</section>")
    return document(title, "\n".join(parts))
