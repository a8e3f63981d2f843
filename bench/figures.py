"""The report's figures, drawn with matplotlib for a paper: built from a run document, rendered
as SVG (inlined in report.html) and PDF (``--out DIR/figures/``).

Conventions every figure keeps: Okabe & Ito's colour-blind-safe palette, one colour an
algorithm in every figure; the legend outside the axes (it never covers data); ticks with
units (bytes in KiB / MiB, time in ns / µs / ms); footprint from 1 (the ideal); error bars
from a cell's repeated replays (min to max); cells that did not finish marked by their status
where their bar would be. matplotlib's ``Figure`` is used without pyplot (no global state, no
display: the Agg-family renderers of the file formats only).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

__all__ = ["OKABE_ITO", "build_figures", "render"]

#: Okabe & Ito (2008), the palette colour-blind readers can tell apart (black kept for "live")
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
LIVE_COLOUR = "#000000"
#: line styles of the operation kinds in the latency CDFs
KIND_STYLES = {"allocate": "-", "free": "--", "realloc": ":"}
_RC: Any = {"svg.fonttype": "none", "svg.hashsalt": "segalloc", "font.size": 8,
       "axes.titlesize": 8, "legend.fontsize": 8,
       # PDF text in the standard Helvetica: nothing to embed (subsetting fonts costs seconds)
       "pdf.use14corefonts": True}


def _byte_unit(largest: float) -> tuple[int, str]:
    """The binary unit a byte axis reaching ``largest`` is drawn in (so its ticks are round)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if largest >= 2 * size:
            return size, unit
    return 1, "B"


def _ns_label(value: float, _: object = None) -> str:
    for unit, size in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value:g} ns"


def _series(document: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], Any]]:
    """Loads in order, series names (algorithm, or algorithm/backend), cells by both."""
    cells = document["cells"]
    several = len({cell["backend"] for cell in cells}) > 1

    def name(cell: dict[str, Any]) -> str:
        return f"{cell['algorithm']}/{cell['backend']}" if several else cell["algorithm"]

    loads = list(dict.fromkeys(cell["load"] for cell in cells))
    names = list(dict.fromkeys(name(cell) for cell in cells))
    return loads, names, {(cell["load"], name(cell)): cell for cell in cells}


def _colours(names: Sequence[str]) -> dict[str, str]:
    return {name: OKABE_ITO[i % len(OKABE_ITO)] for i, name in enumerate(names)}


def _legend_outside(fig: Figure, handles: Sequence[Any], labels: Sequence[str]) -> None:
    """The legend right of the axes: in the constrained layout's outer strip, or in the strip
    a grid keeps free."""
    if fig.get_layout_engine() is not None:
        fig.legend(handles, labels, loc="outside right upper", frameon=False)
    else:
        fig.legend(handles, labels, loc="upper right", frameon=False)


def _bars(document: dict[str, Any], title: str, xlabel: str,
          value: Callable[[dict[str, Any]], float | None],
          spread: Callable[[dict[str, Any]], tuple[float, float] | None] | None = None,
          log: bool = False, origin: float = 0.0,
          formatter: Callable[[float, object], str] | None = None) -> Figure:
    """Horizontal grouped bars, a group a load and a bar a series, from ``origin``; a cell not
    ok gets its status written where its bar would be."""
    loads, names, cells = _series(document)
    colours = _colours(names)
    fig = Figure(figsize=(7.0, 0.3 * len(loads) * max(1, len(names)) / 2 + 1.2),
                 layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / max(len(names), 1)
    handles = []
    unfinished: list[tuple[float, str, str]] = []
    for s, name in enumerate(names):
        ys, widths, errors, lefts = [], [], [], []
        for g, load in enumerate(loads):
            y = g + (s - (len(names) - 1) / 2) * height
            cell = cells.get((load, name))
            if cell is None:
                continue
            if cell["status"] != "ok":
                unfinished.append((y, cell["status"], colours[name]))
                continue
            figure = value(cell)
            if figure is None:
                continue
            ys.append(y)
            widths.append(figure - origin)
            lefts.append(origin)
            low_high = spread(cell) if spread else None
            errors.append((figure - low_high[0], low_high[1] - figure) if low_high else (0, 0))
        handles.append(ax.barh(ys, widths, height=height, left=lefts, color=colours[name],
                               xerr=list(zip(*errors)) if spread and errors else None,
                               error_kw={"elinewidth": 0.7, "capsize": 1.5}))
    for y, status, colour in unfinished:  # at the axis' start, wherever the scale puts it
        ax.text(0.005, y, status, transform=ax.get_yaxis_transform(), va="center", fontsize=6,
                color=colour, style="italic")
    ax.set_yticks(range(len(loads)), loads)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if log:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=origin)
    if formatter is not None:
        ax.xaxis.set_major_formatter(FuncFormatter(formatter))
    ax.grid(axis="x", linewidth=0.3)
    _legend_outside(fig, handles, names)
    return fig


#: inches of a grid's panel, and the strip at its right kept for the legend
PANEL_WIDTH, PANEL_HEIGHT, LEGEND_WIDTH = 2.2, 1.8, 1.9


def _grid(loads: Sequence[str]) -> tuple[Figure, list[Axes]]:
    """A panel a load, laid out by fixed margins (a layout engine over dozens of panels costs
    seconds at every save), the right strip left to the legend."""
    columns = min(4, max(1, len(loads)))
    rows = math.ceil(len(loads) / columns)
    width, height = PANEL_WIDTH * columns + LEGEND_WIDTH, PANEL_HEIGHT * rows + 0.9
    fig = Figure(figsize=(width, height))
    # the left margin holds a panel's tick labels and unit label and, beyond them, the
    # figure's own axis label
    fig.subplots_adjust(left=1.0 / width, right=1 - (LEGEND_WIDTH + 0.1) / width,
                        bottom=0.5 / height, top=1 - 0.75 / height, wspace=0.45, hspace=0.55)
    axes = [fig.add_subplot(rows, columns, index + 1) for index in range(len(loads))]
    for ax, load in zip(axes, loads):
        ax.set_title(load)
        ax.grid(linewidth=0.3)
    return fig, axes


def _latency_cdfs(document: dict[str, Any]) -> Figure | None:
    loads, names, cells = _series(document)
    colours = _colours(names)
    shown = [load for load in loads if any(cells.get((load, n), {}).get("latency_cdf")
                                           for n in names)]
    if not shown:
        return None
    fig, axes = _grid(shown)
    legend: dict[str, Any] = {}
    for ax, load in zip(axes, shown):
        for name in names:
            for kind, points in (cells.get((load, name), {}).get("latency_cdf") or {}).items():
                xs = [max(value, 1) for value, _ in points]
                ys = [probability for _, probability in points]
                (line,) = ax.step(xs, ys, where="post", color=colours[name],
                                  linestyle=KIND_STYLES.get(kind, "-"), linewidth=0.9)
                legend.setdefault(f"{name} {kind}", line)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, numticks=4))
        ax.xaxis.set_major_formatter(FuncFormatter(_ns_label))
        ax.set_ylim(0, 1.01)
    fig.supxlabel("latency of one operation (clock cost subtracted; log scale)")
    fig.supylabel("fraction of operations at or below")
    fig.suptitle("Latency per operation kind (allocate solid, free dashed, realloc dotted)")
    _legend_outside(fig, list(legend.values()), list(legend))
    return fig


def _timelines(document: dict[str, Any], key: str, ylabel: str, title: str,
               live: bool) -> Figure | None:
    loads, names, cells = _series(document)
    colours = _colours(names)
    shown = [load for load in loads
             if any((cells.get((load, n), {}).get("timeline") or {}).get(key) for n in names)]
    if not shown:
        return None
    fig, axes = _grid(shown)
    legend: dict[str, Any] = {}
    for ax, load in zip(axes, shown):
        drew_live = False
        largest = max(max((cells.get((load, n), {}).get("timeline") or {}).get(key) or [0])
                      for n in names)
        size, unit = _byte_unit(largest) if key != "spread" else (1, "")
        for name in names:
            timeline = (cells.get((load, name), {}).get("timeline") or {})
            if not timeline.get(key):
                continue
            ops = [0, *timeline["op"]]
            if live and not drew_live:
                (line,) = ax.plot(ops, [0, *(v / size for v in timeline["live"])],
                                  color=LIVE_COLOUR,
                                  linestyle="--", linewidth=0.9)
                legend.setdefault("live bytes", line)
                drew_live = True
            values = [v / size for v in timeline[key]]
            (line,) = ax.plot(ops, [values[0], *values], color=colours[name], linewidth=0.9)
            legend.setdefault(name, line)
        if unit:
            ax.set_ylabel(unit)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    fig.supxlabel("operations replayed (the allocation clock)")
    fig.supylabel(ylabel)
    fig.suptitle(title)
    _legend_outside(fig, list(legend.values()), list(legend))
    return fig


def _count_label(value: float, _: object = None) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def _log_ticks(axis: Any, formatter: Callable[[float, object], str]) -> None:
    """A log axis ticked at 1, 2 and 5 of each decade, labelled by ``formatter`` (readable
    also when the data span less than a decade)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(formatter))
    axis.set_minor_formatter(NullFormatter())


def _panel_colours(panels: Sequence[Sequence[str]]) -> dict[str, str]:
    """A colour a name, the same in every panel it appears in, and no two names of one panel
    alike (while the palette lasts)."""
    colours: dict[str, str] = {}
    for names in panels:
        for name in names:
            if name not in colours:
                taken = {colours[other] for other in names if other in colours}
                colours[name] = next((colour for colour in OKABE_ITO if colour not in taken),
                                     OKABE_ITO[len(colours) % len(OKABE_ITO)])
    return colours


def _peer_times(document: dict[str, Any]) -> Figure | None:
    """``segalloc peers``' timed jobs: a panel a job, a group of bars an operation, a bar a
    contender that ran (time of one operation, log scale; error bars: min to max of runs)."""
    jobs = [job for job in (document.get("peers") or {}).get("jobs", [])
            if any(entry["status"] == "ok" for entry in job["contenders"])]
    if not jobs:
        return None
    colours = _panel_colours([[entry["name"] for entry in job["contenders"]
                               if entry["status"] == "ok"] for job in jobs])
    fig = Figure(figsize=(7.0, 1.0 + sum(0.45 * len(job["operations"]) + 0.5 for job in jobs)),
                 layout="constrained")
    axes = fig.subplots(len(jobs), 1, squeeze=False,
                        height_ratios=[len(job["operations"]) for job in jobs])[:, 0]
    for ax, job in zip(axes, jobs):
        ran = [entry for entry in job["contenders"] if entry["status"] == "ok"]
        height = 0.8 / len(ran)
        handles = []
        for s, entry in enumerate(ran):
            ys, widths, errors = [], [], []
            for g, op in enumerate(job["operations"]):
                figures = entry["ops"][op]
                runs = figures["runs"]
                ys.append(g + (s - (len(ran) - 1) / 2) * height)
                widths.append(figures["ns_per_op"])
                errors.append((figures["ns_per_op"] - min(runs), max(runs) - figures["ns_per_op"]))
            handles.append(ax.barh(ys, widths, height=height, color=colours[entry["name"]],
                                   xerr=list(zip(*errors)),
                                   error_kw={"elinewidth": 0.7, "capsize": 1.5}))
        ax.set_yticks(range(len(job["operations"])), job["operations"])
        ax.invert_yaxis()
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, _ns_label)
        ax.set_title(f"{job['job']}: {job['count']:,} {job['title']}")
        ax.grid(axis="x", linewidth=0.3)
        # a legend a panel: each job has its own contenders
        ax.legend(handles, [entry["name"] for entry in ran], loc="center left",
                  bbox_to_anchor=(1.01, 0.5), frameon=False)
    axes[-1].set_xlabel("time of one operation (median of the runs; log scale)")
    return fig


def _round_spread(points: list[dict[str, Any]]) -> list[list[float]]:
    """Error bars of the speedups: how far below and above each median the rounds' own ratios
    reach (none for a document without them, or a point without a speedup)."""
    below, above = [], []
    for point in points:
        middle = point["speedup"]
        ratios = [ratio for ratio in point.get("speedup_runs") or [] if ratio is not None]
        if middle is None or not ratios:
            below.append(0.0)
            above.append(0.0)
            continue
        below.append(max(0.0, middle - min(ratios)))
        above.append(max(0.0, max(ratios) - middle))
    return [below, above]


def _peer_scaling(document: dict[str, Any]) -> Figure | None:
    """``segalloc peers``' scaling job: aggregate operations a second against processes, and
    the speedup over one process (bars: the range over the rounds) beside the ideal (n
    processes, n times one's)."""
    scaling = (document.get("peers") or {}).get("scaling") or {}
    series = [entry for entry in scaling.get("series", []) if entry["status"] == "ok"]
    if not series:
        return None
    colours = _colours([entry["name"] for entry in series])
    counts = scaling["processes"]
    fig = Figure(figsize=(7.0, 2.8), layout="constrained")
    rate_ax, speed_ax = fig.subplots(1, 2)
    handles = []
    for entry in series:
        xs = [point["processes"] for point in entry["points"]]
        (line,) = rate_ax.plot(xs, [point["ops_per_second"] for point in entry["points"]],
                               marker="o", markersize=3, linewidth=0.9,
                               color=colours[entry["name"]])
        speed_ax.errorbar(xs, [point["speedup"] for point in entry["points"]],
                          yerr=_round_spread(entry["points"]), marker="o", markersize=3,
                          linewidth=0.9, elinewidth=0.6, capsize=2, color=colours[entry["name"]])
        handles.append(line)
    (ideal,) = speed_ax.plot(counts, counts, color=LIVE_COLOUR, linestyle="--", linewidth=0.7)
    for ax in (rate_ax, speed_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.set_xlabel("processes")
        ax.grid(linewidth=0.3)
    rate_ax.set_yscale("log")
    _log_ticks(rate_ax.yaxis, _count_label)
    rate_ax.set_ylabel("operations a second, all processes")
    rate_ax.set_title("Aggregate throughput")
    speed_ax.set_ylabel("over one process")
    speed_ax.set_ylim(bottom=0)
    speed_ax.set_title("Speedup (dashed: ideal)")
    _legend_outside(fig, [*handles, ideal], [*(entry["name"] for entry in series), "ideal"])
    return fig


def _runs_spread(cell: dict[str, Any]) -> tuple[float, float] | None:
    runs = cell["figures"].get("ns_per_op_runs") or []
    return (min(runs), max(runs)) if len(runs) > 1 else None


def _words_per_op(document: dict[str, Any]) -> Figure | None:
    """Mean words an operation, log scale: a list walk costs thousands where a good fit costs
    tens, and both must stay readable (ticks at 1, 2 and 5 of each decade). None when no cell
    counted them (reports before version 3)."""
    if not any(cell["figures"].get("words_per_op") for cell in document["cells"]):
        return None
    fig = _bars(document, "Metadata words read and written per operation (mean; deterministic)",
                "words per operation (log scale)",
                lambda c: (c["figures"].get("words_per_op") or {}).get("mean"), log=True)
    _log_ticks(fig.axes[0].xaxis, _count_label)
    return fig


def build_figures(document: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """(file stem, heading, figure) of every figure the document supports."""
    from matplotlib import rc_context

    with rc_context(_RC):
        figures = _all_figures(document)
    return [(stem, heading, fig) for stem, heading, fig in figures if fig is not None]


def _all_figures(document: dict[str, Any]) -> list[tuple[str, str, Figure | None]]:
    return [
        ("footprint", "Footprint ratio", _bars(
            document, "Footprint: high-water / peak live bytes (1 is ideal)", "footprint ratio",
            lambda c: c["figures"]["footprint_ratio"], origin=1.0)),
        ("ns_per_op", "Time per operation", _bars(
            document, "Time per operation (median of the replays; bars: min to max)",
            "time per operation (log scale)", lambda c: c["figures"]["ns_per_op"],
            spread=_runs_spread, log=True, formatter=_ns_label)),
        ("words_per_op", "Word traffic per operation", _words_per_op(document)),
        ("latency_cdf", "Latency distributions", _latency_cdfs(document)),
        ("timeline", "Live bytes and high-water", _timelines(
            document, "high_water", "bytes", "High-water over time (live bytes dashed)", True)),
        ("largest_free", "Largest free block", _timelines(
            document, "largest_free", "largest free block",
            "Largest free block over time", False)),
        ("spread", "Fragmentation over time", _timelines(
            document, "spread", "1 - sqrt(sum u^2) / sum u",
            "Fragmentation of the free blocks over time (pw_allocator's / Sawicki's)", False)),
        ("peers", "Peers: time of one operation", _peer_times(document)),
        ("peers_scaling", "Peers: processes on one shared object", _peer_scaling(document)),
    ]


def render(fig: Figure, file_format: str) -> bytes:
    """The figure as an SVG or PDF file's bytes (reproducible: no dates, fixed ids)."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    metadata = {"Date": None} if file_format == "svg" else {"CreationDate": None}
    # the core Helvetica has one weight, which the font manager logs about at every text
    font_log = logging.getLogger("matplotlib.font_manager")
    level = font_log.level
    font_log.setLevel(logging.ERROR)
    try:
        with rc_context(_RC):
            fig.savefig(buffer, format=file_format, metadata=metadata)
    finally:
        font_log.setLevel(level)
    return buffer.getvalue()
