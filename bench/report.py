"""The run document (report.json) and its renderings: Markdown and self-contained HTML.

Functions here return strings or rows; writing files is ``write_reports``'s only side effect
and printing is the CLI's. The figures are ``segalloc.bench.figures``' (matplotlib): the HTML
carries them inline as SVG, and ``write_reports`` also writes each as SVG and PDF under
``figures/``.

Report format versions (the document's ``version``; older files keep loading):

- 1: the first format. Root: ``version``, ``kind`` ("segalloc-bench"), ``started``,
  ``wall_seconds``, ``environment`` (machine, python, git_commit), ``parameters``, ``loads``,
  ``cells`` (algorithm, backend, load, kind, status, error, segment_size, figures, timeline,
  free_histogram_at_peak), ``scenarios`` (ran, reason, cells), ``boost`` (available, reason,
  per trace and Boost algorithm the replay figures, counterparts).
- 2: each cell is replayed ``parameters.repeat`` times, each time on a new segment; its
  ``figures`` are those of the replay of median ns/op and gain ``ns_per_op_runs`` (every
  replay's ns/op, in run order); Boost's figures are likewise the median of as many replays.
- 3: the replays of a cell are made one round of the sweep after another, each in a process
  of its own; ``figures`` gain ``cpu_ns_per_op_runs`` (each replay's thread CPU time an
  operation, what ``compare`` judges), ``latency_ns`` (per operation kind present: p50, p90,
  p99, p999, max in ns, clock cost ``latency_clock_ns`` subtracted), the deterministic word
  traffic ``words_per_op`` / ``reads_per_op`` / ``writes_per_op`` / ``lines_per_op`` (each
  ``{"mean", "max"}``, over ``cost_ops`` counted operations: the first ones in files made
  before the count sampled the whole trace, evenly spaced stretches of it since, each
  weighed by the operations it stands for), ``failures_with_enough_free``,
  ``fragmentation_1`` (Johnstone & Wilson's time-averaged measure), ``spread_max``,
  ``largest_free_at_peak``; the probes' figures are absent from cells that did not finish. The
  cell gains ``latency_cdf`` (per kind, [ns, probability] points) and its ``timeline`` gains
  ``largest_free``. Later version-3 files add ``environment.build`` (absent from earlier ones):
  ``pure_python`` (``SEGALLOC_PURE_PYTHON`` was set) and ``algorithms``, a ``{name, compiled}``
  object per algorithm of the run.

A document of any version may carry ``peers`` (``segalloc bench --peers``): the document of
``segalloc peers --json``, versioned on its own (``segalloc.bench.peers``); the reports then
gain its section and figures.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "HEADLINES",
    "REPORT_VERSION",
    "boost_rows",
    "build_line",
    "cost_rows",
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

REPORT_VERSION = 3
KIND = "segalloc-bench"

Rows = tuple[list[str], list[list[Any]]]


# -- the document --------------------------------------------------------------------------
def dump_report(document: dict[str, Any]) -> str:
    """The document as report.json's text (sorted keys, so runs diff cleanly)."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a report.json of any known version; ``ValueError`` naming what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; a report.json file was expected")
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
    if not isinstance(document.get("cells"), list):
        raise ValueError(f"{path}: a segalloc bench report without its 'cells' list (cut or "
                         "damaged)")
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


def cost_rows(document: dict[str, Any]) -> Rows:
    """One row an ok cell: latency percentiles, word traffic and the field's fragmentation
    figures (a report before version 3 shows dashes)."""
    headers = ["load", "algorithm", "backend", "alloc p50 ns", "alloc p99 ns", "alloc p99.9 ns",
               "alloc max ns", "free p99 ns", "words/op", "max words", "lines/op",
               "ops counted", "frag#1",
               "spread max", "failed, free enough"]
    rows = []
    for cell in _ok_cells(document):
        f = cell["figures"]
        allocate = f.get("latency_ns", {}).get("allocate", {})
        words, lines = f.get("words_per_op", {}), f.get("lines_per_op", {})
        rows.append([cell["load"], cell["algorithm"], cell["backend"], allocate.get("p50"),
                     allocate.get("p99"), allocate.get("p999"), allocate.get("max"),
                     f.get("latency_ns", {}).get("free", {}).get("p99"), words.get("mean"),
                     words.get("max"), lines.get("mean"), f.get("cost_ops"),
                     f.get("fragmentation_1"),
                     f.get("spread_max"), f.get("failures_with_enough_free")])
    return headers, rows


def _series_name(cell: dict[str, Any], backends: int) -> str:
    return cell["algorithm"] if backends == 1 else f"{cell['algorithm']}/{cell['backend']}"


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


def build_line(build: dict[str, Any]) -> str:
    """One line saying which build ran: ``build: compiled (best_fit, segregated_fit),
    interpreted (sequential_fit)``, and ``SEGALLOC_PURE_PYTHON=1`` when it was set."""
    parts = []
    for compiled, label in ((True, "compiled"), (False, "interpreted")):
        names = [entry["name"] for entry in build["algorithms"] if entry["compiled"] is compiled]
        if names:
            parts.append(f"{label} ({', '.join(names)})")
    if build["pure_python"]:
        parts.append("as SEGALLOC_PURE_PYTHON=1 asks")
    return "build: " + (", ".join(parts) or "no algorithm")


def _environment_lines(document: dict[str, Any]) -> list[str]:
    env = document["environment"]
    machine, python = env["machine"], env["python"]
    params = document["parameters"]
    build = [f"- {build_line(env['build'])}"] if "build" in env else []
    return [
        f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['system']} "
        f"{machine['release']} ({machine['architecture']})",
        f"- Python: {python['implementation']} {python['version']}",
        *build,
        f"- git commit: {env['git_commit'] or 'unknown'}",
        f"- profile {params['profile']}: scale {params['scale']}, seed {params['seed']}, "
        f"{params['samples']} samples, trace limit {params['trace_limit'] or 'none'}, "
        f"{params.get('repeat') or 1} replay(s) a cell, jobs {params['jobs']}, "
        f"executor {params['executor']}",
        f"- started {document['started']}, wall time {document['wall_seconds']:.1f} s",
    ]


_COST_NOTE = (
    "Latency: one operation's algorithm calls timed by the replay loop's clock in a replay of "
    "its own (the compiled loop's C clock on the compiled build; the clock's own cost "
    "subtracted); the tail (p99.9, max) includes the moments a shared machine took the core "
    "away. words/op: metadata words read + written per operation through a counting view, the "
    "same on every machine (mean over the trace, from the counted operations of 20 evenly "
    "spaced stretches of it; max: the largest counted); lines/op: distinct 64-byte lines they "
    "touch. "
    "frag#1: Johnstone & Wilson's time-averaged measure; spread: 1 - sqrt(sum u^2) / sum u over "
    "the free blocks (pw_allocator's fragmentation), its maximum over the samples; failed, free "
    "enough: allocations that failed although the free blocks' total would have held them.")


def _peers_parts(peers: dict[str, Any]) -> list[tuple[str, Any]]:
    """The peers section as (kind, content) parts, kind one of heading, text, list, table:
    what the Markdown and the HTML report both render."""
    from segalloc.bench.peers import caption, scaling_rows, timed_rows

    parts: list[tuple[str, Any]] = [("heading", "Peers: segalloc beside what users would pick "
                                                "instead"), ("text", caption(peers))]
    if peers["not_installed"]:
        parts.append(("text", f"Not installed (reported, not run): "
                              f"{', '.join(peers['not_installed'])}."))
    for job in peers["jobs"]:
        parts += [("subheading", f"{job['job']}: {job['count']:,} {job['title']}"),
                  ("table", timed_rows(job)),
                  ("list", [f"{entry['name']}: {entry['setup']}" for entry in job["contenders"]])]
    scaling = peers.get("scaling")
    if scaling:
        parts += [("subheading", f"scaling: aggregate operations a second, "
                                 f"{scaling['keys']:,} keys"),
                  ("table", scaling_rows(scaling)),
                  ("list", [f"{entry['name']}: {entry['setup']}" for entry in scaling["series"]])]
    return parts


def _peers_markdown(peers: dict[str, Any]) -> list[str]:
    out = []
    for kind, content in _peers_parts(peers):
        if kind == "heading":
            out += [f"## {content}", ""]
        elif kind == "subheading":
            out += [f"### {content}", ""]
        elif kind == "table":
            out += [_markdown_table(content), ""]
        elif kind == "list":
            out += [*(f"- {item}" for item in content), ""]
        else:
            out += [content, ""]
    return out


def _peers_html(peers: dict[str, Any]) -> list[str]:
    tags = {"heading": "h2", "subheading": "h3", "text": "p"}
    out = []
    for kind, content in _peers_parts(peers):
        if kind == "table":
            out.append(_html_table(content))
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_esc(item)}</li>" for item in content) + "</ul>")
        else:
            out.append(f"<{tags[kind]}>{_esc(content)}</{tags[kind]}>")
    return out


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
           "## Latency, word traffic and fragmentation over time", "", _COST_NOTE, "",
           _markdown_table(cost_rows(document)), "",
           "## Boost reference", "", _boost_note(document), ""]
    ratios = boost_rows(document)
    if ratios[1]:
        out += ["Ratios are ours over Boost's (below 1: we are faster / smaller).", "",
                _markdown_table(ratios), ""]
    if document.get("peers"):
        out += _peers_markdown(document["peers"])
    scenarios = document["scenarios"]
    out += ["## Scenarios", ""]
    if scenarios["ran"]:
        out += [_markdown_table(scenario_rows(document)), ""]
    else:
        out += [f"Not run: {scenarios['reason']}", ""]
    return "\n".join(out)


# -- HTML ----------------------------------------------------------------------------------
def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


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


def render_html(document: dict[str, Any],
                figures: list[tuple[str, str]] | None = None) -> str:
    """report.html: the Markdown report's content plus the figures as inline SVG (``figures``:
    (heading, svg) already rendered, else drawn here); no external file."""
    env = "".join(f"<li>{_esc(line[2:])}</li>" for line in _environment_lines(document))
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>segalloc benchmark report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>segalloc benchmark report</h1>", f"<ul>{env}</ul>",
             *(part for figure, title in HEADLINES
               for part in (f"<h2>{_esc(title)}</h2>",
                            _html_table(headline_rows(document, figure)))),
             "<h2>Loads</h2>", _html_table(summary_rows(document)),
             *(f"<p>{_esc(line)}</p>" for line in unfinished_cells(document)),
             "<h2>Latency, word traffic and fragmentation over time</h2>",
             f"<p>{_esc(_COST_NOTE)}</p>", _html_table(cost_rows(document)),
             "<h2>Boost reference</h2>", f"<p>{_esc(_boost_note(document))}</p>"]
    ratios = boost_rows(document)
    if ratios[1]:
        parts += ["<p>Ratios are ours over Boost's (below 1: we are faster / smaller).</p>",
                  _html_table(ratios)]
    if document.get("peers"):
        parts += _peers_html(document["peers"])
    parts.append("<h2>Figures</h2>")
    if figures is None:
        figures = [(heading, svg) for _, heading, svg in _inline_figures(document)]
    for heading, svg in figures:
        parts += [f"<h3>{_esc(heading)}</h3>", svg]
    parts.append("<h2>Scenarios</h2>")
    scenarios = document["scenarios"]
    parts.append(_html_table(scenario_rows(document)) if scenarios["ran"]
                 else f"<p>Not run: {_esc(scenarios['reason'])}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _inline_figures(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(file stem, heading, inline <svg> element) of every figure."""
    from segalloc.bench.figures import build_figures, render

    return [(stem, heading, _svg_element(render(figure, "svg")))
            for stem, heading, figure in build_figures(document)]


def _svg_element(svg_file: bytes) -> str:
    """An SVG file's ``<svg>`` element, to inline in HTML (the XML prolog left out)."""
    text = svg_file.decode("utf-8")
    return text[text.index("<svg"):]


def write_reports(document: dict[str, Any], out: str | os.PathLike[str],
                  figures: bool = True) -> list[Path]:
    """Write report.json, report.md and report.html into ``out``, and (``figures``) every
    figure as SVG and PDF into ``out/figures`` and inline in the HTML; return the paths of the
    three reports."""
    from segalloc.bench.figures import build_figures, render

    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"--out must be a directory, and {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    figures_dir = directory / "figures"
    if figures:
        figures_dir.mkdir(exist_ok=True)
    svgs = {}
    for stem, heading, figure in build_figures(document) if figures else []:
        for file_format in ("svg", "pdf"):
            data = render(figure, file_format)
            (figures_dir / f"{stem}.{file_format}").write_bytes(data)
            if file_format == "svg":
                svgs[stem] = (heading, _svg_element(data))
    files = {"report.json": dump_report(document), "report.md": render_markdown(document),
             "report.html": render_html(document, list(svgs.values()))}
    paths = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
