"""The run document (report.json) and its renderings: Markdown and self-contained HTML.

Functions here return strings or rows; writing files is ``write_reports``'s only side effect
and printing is the CLI's. The HTML carries its plots as inline SVG drawn here (no plotting
library): footprint ratio and ns/op per algorithm per load, live bytes and high-water over time,
and the free-block size histogram at the peak.

Report format versions (the document's ``version``; older files keep loading):

- 1: the first format. Root: ``version``, ``kind`` ("segalloc-bench"), ``started``,
  ``wall_seconds``, ``environment`` (machine, python, git_commit), ``parameters``, ``loads``,
  ``cells`` (algorithm, backend, load, kind, status, error, segment_size, figures, timeline,
  free_histogram_at_peak), ``scenarios`` (ran, reason, cells), ``boost`` (available, reason,
  per trace and Boost algorithm the replay figures, counterparts).
- 2: each cell is replayed ``parameters.repeat`` times, each time on a new segment; its
  ``figures`` are those of the replay of median ns/op and gain ``ns_per_op_runs`` (every
  replay's ns/op, in run order); Boost's figures are likewise the median of as many replays.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HEADLINES",
    "REPORT_VERSION",
    "boost_rows",
    "dump_report",
    "headline_rows",
    "load_report",
    "render_html",
    "render_markdown",
    "scenario_rows",
    "summary_rows",
    "unfinished_cells",
    "write_reports",
]

REPORT_VERSION = 2
KIND = "segalloc-bench"

Rows = tuple[list[str], list[list[Any]]]


# -- the document --------------------------------------------------------------------------
def dump_report(document: dict[str, Any]) -> str:
    """The document as report.json's text (sorted keys, so runs diff cleanly)."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a report.json of any known version; ``ValueError`` naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"report file not found: {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON report: {exc}") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise ValueError(f"{path}: not a segalloc bench report (no kind {KIND!r})")
    version = document.get("version")
    if not isinstance(version, int) or not 1 <= version <= REPORT_VERSION:
        raise ValueError(f"{path}: report version {version!r} is not one this segalloc reads "
                         f"(1..{REPORT_VERSION})")
    return document


# -- tables --------------------------------------------------------------------------------
def _ok_cells(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [cell for cell in document["cells"] if cell["status"] == "ok"]


def summary_rows(document: dict[str, Any]) -> Rows:
    """One row a cell: the headline figures (failed cells show their error)."""
    headers = ["load", "algorithm", "backend", "ops", "ns/op", "footprint", "frag#4",
               "frag#4 policy", "frag@peak", "failures"]
    rows = []
    for cell in document["cells"]:
        f = cell["figures"]
        if cell["status"] != "ok":
            rows.append([cell["load"], cell["algorithm"], cell["backend"], cell["status"],
                         None, None, None, None, None, None])
            continue
        rows.append([cell["load"], cell["algorithm"], cell["backend"], f["ops"],
                     round(f["ns_per_op"]), f["footprint_ratio"], f["fragmentation_4"],
                     f["fragmentation_4_policy"], f["frag_at_peak"], f["failures"]])
    return headers, rows


def headline_rows(document: dict[str, Any], figure: str) -> Rows:
    """One row a load, one column an algorithm (and backend): ``figure`` of each cell, or the
    status of a cell that did not finish."""
    cells = document["cells"]
    backends = len({cell["backend"] for cell in cells})
    names = list(dict.fromkeys(_series_name(cell, backends) for cell in cells))
    by_key = {(cell["load"], _series_name(cell, backends)): cell for cell in cells}
    rows = []
    for load in dict.fromkeys(cell["load"] for cell in cells):
        row: list[Any] = [load]
        for name in names:
            cell = by_key.get((load, name))
            if cell is None or cell["status"] != "ok":
                row.append(None if cell is None else cell["status"])
            else:
                value = cell["figures"][figure]
                row.append(round(value) if figure == "ns_per_op" else value)
        rows.append(row)
    return ["load", *names], rows


#: the headline tables: (figure, title)
HEADLINES = (("footprint_ratio", "Footprint ratio (high_water / peak_live; 1 is perfect)"),
             ("ns_per_op", "Nanoseconds per operation (replay wall time / operations; the "
                           "median of the cell's replays)"))


def unfinished_cells(document: dict[str, Any]) -> list[str]:
    """A line for each cell that erred or ran out of time, saying why."""
    return [f"{cell['status']}: {cell['load']} {cell['algorithm']} {cell['backend']}: "
            f"{cell['error']}" for cell in document["cells"] if cell["status"] != "ok"]


def _boost_traces(boost: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-trace entries of the Boost reference (the other keys describe it)."""
    return {key: value for key, value in boost.items()
            if isinstance(value, dict) and key != "counterparts"}


def boost_rows(document: dict[str, Any]) -> Rows:
    """Our figures over Boost's counterpart's, per trace and algorithm."""
    headers = ["trace", "algorithm", "Boost algorithm", "ns/op", "Boost ns/op", "ns/op ratio",
               "footprint", "Boost footprint", "footprint ratio"]
    boost = document["boost"]
    traces = _boost_traces(boost)
    counterparts = boost.get("counterparts", {})
    rows = []
    for cell in _ok_cells(document):
        theirs = traces.get(cell["load"], {}).get(counterparts.get(cell["algorithm"], ""))
        if not theirs:
            continue
        ours = cell["figures"]
        rows.append([
            cell["load"], cell["algorithm"], counterparts[cell["algorithm"]],
            round(ours["ns_per_op"]), round(theirs["ns_per_op"]),
            ours["ns_per_op"] / theirs["ns_per_op"] if theirs["ns_per_op"] else None,
            ours["footprint_ratio"], theirs["footprint_ratio"],
            ours["footprint_ratio"] / theirs["footprint_ratio"]
            if theirs["footprint_ratio"] else None,
        ])
    return headers, rows


def scenario_rows(document: dict[str, Any]) -> Rows:
    """One row a scenario cell."""
    headers = ["#", "scenario", "algorithm", "backend", "status", "reason"]
    rows = [[c["scenario"], c["title"], c["algorithm"], c["backend"], c["status"],
             c.get("reason") or ""] for c in document["scenarios"]["cells"]]
    return headers, rows


def _boost_note(document: dict[str, Any]) -> str:
    boost = document["boost"]
    if not boost.get("available"):
        return f"Boost reference absent: {boost.get('reason')}"
    return (f"Boost {boost.get('boost_version')} reference built with {boost.get('compiler')}, "
            f"measured in this run on a {boost.get('segment_size')}-byte segment.")


def _environment_lines(document: dict[str, Any]) -> list[str]:
    env = document["environment"]
    machine, python = env["machine"], env["python"]
    params = document["parameters"]
    return [
        f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['system']} "
        f"{machine['release']} ({machine['architecture']})",
        f"- Python: {python['implementation']} {python['version']}",
        f"- git commit: {env['git_commit'] or 'unknown'}",
        f"- profile {params['profile']}: scale {params['scale']}, seed {params['seed']}, "
        f"{params['samples']} samples, trace limit {params['trace_limit'] or 'none'}, "
        f"{params.get('repeat') or 1} replay(s) a cell, jobs {params['jobs']}, "
        f"executor {params['executor']}",
        f"- started {document['started']}, wall time {document['wall_seconds']:.1f} s",
    ]


# -- Markdown ------------------------------------------------------------------------------
def _text(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value)
    return "-" if value is None else str(value)


def _markdown_table(rows: Rows) -> str:
    headers, body = rows
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(_text(v).replace("|", "\\|") for v in row) + " |"
                 for row in body)
    return "\n".join(lines)


def render_markdown(document: dict[str, Any]) -> str:
    """report.md: environment, headline table, Boost ratios, scenarios."""
    out = ["# segalloc benchmark report", "", *_environment_lines(document), "",
           *(line for figure, title in HEADLINES
             for line in (f"## {title}", "", _markdown_table(headline_rows(document, figure)),
                          "")),
           "## Loads", "",
           "frag#4 = footprint - 1 (Johnstone & Wilson); policy = the same with the per-block "
           "overhead (header and rounding, measured on the blocks live at the peak) taken out, "
           "an estimate; frag@peak = 1 - largest free / total free at the peak.", "",
           _markdown_table(summary_rows(document)), "",
           *(f"- {line}" for line in unfinished_cells(document)), "",
           "## Boost reference", "", _boost_note(document), ""]
    ratios = boost_rows(document)
    if ratios[1]:
        out += ["Ratios are ours over Boost's (below 1: we are faster / smaller).", "",
                _markdown_table(ratios), ""]
    scenarios = document["scenarios"]
    out += ["## Scenarios", ""]
    if scenarios["ran"]:
        out += [_markdown_table(scenario_rows(document)), ""]
    else:
        out += [f"Not run: {scenarios['reason']}", ""]
    return "\n".join(out)


# -- SVG plots -----------------------------------------------------------------------------
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 760, 300, 70, 110, 30, 150
#: group labels longer than this are shortened on the x axis (the tooltip has them whole)
LABEL_CHARS = 24


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _ticks(low: float, high: float, log: bool) -> list[float]:
    if log:
        return [10.0 ** k for k in range(math.floor(math.log10(low)),
                                         math.ceil(math.log10(high)) + 1)]
    step = 10 ** math.floor(math.log10(high - low or 1))
    while (high - low) / step > 6:
        step *= 2
    first = math.floor(low / step) * step
    return [first + k * step for k in range(int((high - first) / step) + 2)]


def _frame(title: str, ylabel: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="11">',
            f"<title>{_esc(title)}</title>",
            f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{_esc(title)}</text>',
            f'<text x="12" y="{TOP + (HEIGHT - TOP - BOTTOM) / 2}" transform="rotate(-90 12 '
            f'{TOP + (HEIGHT - TOP - BOTTOM) / 2})" text-anchor="middle">{_esc(ylabel)}</text>']


def _colours(names: Sequence[str]) -> dict[str, str]:
    """One colour a series, in order (so an algorithm keeps its colour across plots)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _legend(colours: dict[str, str]) -> list[str]:
    x = WIDTH - RIGHT + 10
    out = []
    for i, (name, colour) in enumerate(colours.items()):
        y = TOP + 14 * i
        out.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{y + 9}">{_esc(name)}</text>')
    return out


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"


class _Axis:
    """Maps values to the plot's y pixels (linear or log10)."""

    def __init__(self, values: Sequence[float], log: bool, floor_zero: bool) -> None:
        positive = [v for v in values if v > 0] or [1.0]
        self.log = log
        if log:
            self.low, self.high = min(positive), max(positive)
            self.ticks = _ticks(self.low, self.high, True)
        else:
            self.low = 0.0 if floor_zero else min(values, default=0.0)
            self.high = max(values, default=1.0)
            if self.high <= self.low:
                self.high = self.low + 1.0
            self.ticks = _ticks(self.low, self.high, False)
        self.low, self.high = min(self.ticks[0], self.low), max(self.ticks[-1], self.high)

    def y(self, value: float) -> float:
        span = HEIGHT - TOP - BOTTOM
        if self.log:
            low, high = math.log10(self.low), math.log10(self.high)
            value = math.log10(max(value, self.low))
        else:
            low, high = self.low, self.high
        return HEIGHT - BOTTOM - span * (value - low) / ((high - low) or 1)

    def lines(self) -> list[str]:
        out = []
        for tick in self.ticks:
            y = self.y(tick)
            out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                       'stroke="#ddd"/>')
            out.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
                       f"{_tick_label(tick)}</text>")
        return out


def _tick_label(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def bar_chart(title: str, groups: Sequence[str], series: dict[str, list[float | None]],
              ylabel: str, log: bool = False, colours: dict[str, str] | None = None) -> str:
    """Grouped bars: one group a label, one bar a series; a missing value leaves a gap."""
    colours = colours or _colours(list(series))
    values = [v for vs in series.values() for v in vs if v is not None]
    axis = _Axis(values or [1.0], log, floor_zero=True)
    out = _frame(title, ylabel) + axis.lines()
    slot = (WIDTH - LEFT - RIGHT) / max(len(groups), 1)
    bar = slot * 0.8 / max(len(series), 1)
    base = axis.y(axis.low)
    for g, group in enumerate(groups):
        x0 = LEFT + g * slot + slot * 0.1
        for s, (name, vs) in enumerate(series.items()):
            value = vs[g]
            if value is None:
                continue
            top = axis.y(value)
            out.append(f'<rect x="{x0 + s * bar:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                       f'height="{max(base - top, 0.5):.1f}" fill="{colours[name]}">'
                       f"<title>{_esc(group)} {_esc(name)}: {value:.4g}</title></rect>")
        cx = x0 + slot * 0.4
        out.append(f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 12}" text-anchor="end" '
                   f'transform="rotate(-35 {cx:.1f} {HEIGHT - BOTTOM + 12})">'
                   f"<title>{_esc(group)}</title>{_esc(_short(group))}</text>")
    out += _legend({name: colours[name] for name in series}) + ["</svg>"]
    return "\n".join(out)


def line_chart(title: str, series: dict[str, tuple[list[int], list[float]]], ylabel: str,
               colours: dict[str, str] | None = None) -> str:
    """Lines over operation count from 0: one polyline a series; "live" is drawn dashed."""
    colours = colours or _colours(list(series))
    values = [v for _, ys in series.values() for v in ys]
    xs = [x for xs, _ in series.values() for x in xs]
    axis = _Axis(values or [1.0], False, floor_zero=True)
    right = max(xs, default=1) or 1
    out = _frame(title, ylabel) + axis.lines()
    for name, (px, py) in series.items():
        points = " ".join(f"{LEFT + (WIDTH - LEFT - RIGHT) * x / right:.1f},{axis.y(y):.1f}"
                          for x, y in zip([0, *px], [0, *py]))
        dash = ' stroke-dasharray="4 3"' if name == "live" else ""
        out.append(f'<polyline points="{points}" fill="none" stroke-width="1.5" '
                   f'stroke="{colours[name]}"{dash}/>')
    out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - BOTTOM + 30}" '
               f'text-anchor="middle">operations (of {right:,})</text>')
    out += _legend({name: colours[name] for name in series}) + ["</svg>"]
    return "\n".join(out)


def _series_name(cell: dict[str, Any], backends: int) -> str:
    return cell["algorithm"] if backends == 1 else f"{cell['algorithm']}/{cell['backend']}"


def _plots(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(heading, svg) for every plot of the report."""
    loads = list(dict.fromkeys(cell["load"] for cell in document["cells"]))
    backends = len({cell["backend"] for cell in document["cells"]})
    names = list(dict.fromkeys(_series_name(cell, backends) for cell in document["cells"]))
    colours = {**_colours(names), "live": "#000000"}
    by_key = {(cell["load"], _series_name(cell, backends)): cell
              for cell in _ok_cells(document)}

    def figure(name: str, key: str) -> list[float | None]:
        return [by_key[(load, name)]["figures"][key] if (load, name) in by_key else None
                for load in loads]

    plots = [
        ("Footprint ratio", bar_chart("footprint ratio (high_water / peak_live) per load", loads,
                                      {n: figure(n, "footprint_ratio") for n in names},
                                      "footprint ratio", colours=colours)),
        ("Time per operation", bar_chart("ns per operation per load (log scale)", loads,
                                         {n: figure(n, "ns_per_op") for n in names},
                                         "ns/op", log=True, colours=colours)),
    ]
    for load in loads:
        series: dict[str, tuple[list[int], list[float]]] = {}
        for name in names:
            cell = by_key.get((load, name))
            if cell and cell["timeline"]["op"]:
                if "live" not in series:
                    series["live"] = (cell["timeline"]["op"], cell["timeline"]["live"])
                series[name] = (cell["timeline"]["op"], cell["timeline"]["high_water"])
        if series:
            plots.append((f"{load}: live bytes and high-water",
                          line_chart(f"{load}: live bytes (dashed) and high-water over time",
                                     series, "bytes", colours)))
        histograms = {name: by_key[(load, name)]["free_histogram_at_peak"]
                      for name in names if (load, name) in by_key}
        buckets = sorted({b for h in histograms.values() for b in h},
                         key=lambda b: int(b.split("^")[1]))
        if buckets:
            plots.append((f"{load}: free blocks at peak",
                          bar_chart(f"{load}: free-block sizes at peak (count per size class)",
                                    buckets,
                                    {n: [h.get(b) for b in buckets]
                                     for n, h in histograms.items()},
                                    "free blocks", colours=colours)))
    return plots


# -- HTML ----------------------------------------------------------------------------------
def _html_table(rows: Rows) -> str:
    headers, body = rows
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    lines = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for row in body:
        cells = "".join(
            f'<td class="num">{_esc(_text(v))}</td>' if isinstance(v, (int, float))
            and not isinstance(v, bool) else f"<td>{_esc(_text(v))}</td>"
            for v in row)
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _number(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"


_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:2px 6px}td.num{text-align:right}
th{background:#f3f3f3}svg{display:block;margin:1em 0}"""


def render_html(document: dict[str, Any]) -> str:
    """report.html: the Markdown report's content plus inline SVG plots; no external file."""
    env = "".join(f"<li>{_esc(line[2:])}</li>" for line in _environment_lines(document))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>segalloc benchmark report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>segalloc benchmark report</h1>", f"<ul>{env}</ul>",
             *(part for figure, title in HEADLINES
               for part in (f"<h2>{_esc(title)}</h2>",
                            _html_table(headline_rows(document, figure)))),
             "<h2>Loads</h2>", _html_table(summary_rows(document)),
             *(f"<p>{_esc(line)}</p>" for line in unfinished_cells(document)),
             "<h2>Boost reference</h2>", f"<p>{_esc(_boost_note(document))}</p>"]
    ratios = boost_rows(document)
    if ratios[1]:
        parts += ["<p>Ratios are ours over Boost's (below 1: we are faster / smaller).</p>",
                  _html_table(ratios)]
    parts.append("<h2>Plots</h2>")
    for heading, svg in _plots(document):
        parts += [f"<h3>{_esc(heading)}</h3>", svg]
    parts.append("<h2>Scenarios</h2>")
    scenarios = document["scenarios"]
    parts.append(_html_table(scenario_rows(document)) if scenarios["ran"]
                 else f"<p>Not run: {_esc(scenarios['reason'])}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_reports(document: dict[str, Any], out: str | os.PathLike[str]) -> list[Path]:
    """Write report.json, report.md and report.html into ``out``; return their paths."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    files = {"report.json": dump_report(document), "report.md": render_markdown(document),
             "report.html": render_html(document)}
    paths = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
