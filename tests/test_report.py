"""report.json's structure (pinned by a golden file), report.md and the self-contained HTML."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path
from typing import Any

import pytest
from compiled_build import compiled_installed

from segalloc import PURE_PYTHON, is_compiled, plugins
from segalloc.bench.compare import compare_reports
from segalloc.bench.figures import build_figures
from segalloc.bench.report import (
    REPORT_VERSION,
    boost_rows,
    build_line,
    cost_rows,
    dump_report,
    load_report,
    render_html,
    render_markdown,
    summary_rows,
    write_reports,
)
from segalloc.bench.runner import BenchParameters, run_bench
from segalloc.bench.traces import write_trace
from segalloc.bench.workloads import generate

GOLDEN = Path(__file__).with_name("golden") / "report_keys.json"
#: parts of the document whose inner keys belong to other modules (scenario figures, Boost)
OPAQUE = {"boost", "scenarios.cells[].figures", "scenarios.cells[].boost",
          "cells[].free_histogram_at_peak", "cells[].latency_cdf"}
#: documents of the earlier format versions (two cells each, cut from real runs)
OLD_VERSIONS = sorted(GOLDEN.parent.glob("report_v*.json"))


def key_structure(value: Any, path: str = "") -> Any:
    """The document's shape: objects keep their keys, lists the shape of their first item,
    every scalar becomes "value"."""
    if path in OPAQUE:
        return "object"
    if isinstance(value, dict):
        return {key: key_structure(item, f"{path}.{key}" if path else key)
                for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [key_structure(value[0], f"{path}[]")] if value else []
    return "value"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    scratch = tmp_path_factory.mktemp("run")
    trace_file = scratch / "tiny.trace.gz"
    write_trace(generate("peaks", 0, 600), trace_file)
    params = BenchParameters(algorithms=("sequential_fit",), workloads=("uniform", "ramp"),
                             traces=(str(trace_file),), scale=500, samples=6, jobs=1,
                             shipped_traces=False, boost=False)
    return run_bench(params, progress=False)


def test_report_keys_match_the_golden_file(document: dict[str, Any]) -> None:
    shape = key_structure(json.loads(dump_report(document)))
    expected = json.loads(GOLDEN.read_text())
    assert shape == expected, (
        "report.json's structure changed: bump REPORT_VERSION, write its history in "
        f"bench/report.py and update {GOLDEN} to:\n{json.dumps(shape, indent=1, sort_keys=True)}")


def test_document_records_the_run(document: dict[str, Any]) -> None:
    assert document["version"] == REPORT_VERSION and document["kind"] == "segalloc-bench"
    env = document["environment"]
    assert env["python"]["version"].count(".") == 2 and env["machine"]["cores"] >= 1
    assert document["parameters"]["algorithms"] == ["sequential_fit"]
    assert [c["load"] for c in document["cells"]] == ["uniform", "ramp", "tiny.trace.gz"]
    assert all(c["status"] == "ok" for c in document["cells"])
    assert document["scenarios"]["ran"] and len(document["scenarios"]["cells"]) == 9
    assert document["boost"] == {"available": False, "reason": "not asked for"}


def test_document_records_which_build_ran(document: dict[str, Any]) -> None:
    build = document["environment"]["build"]
    compiled = is_compiled(plugins().algorithm("sequential_fit"))
    assert build == {"pure_python": PURE_PYTHON,
                     "algorithms": [{"name": "sequential_fit", "compiled": compiled}]}
    assert f"- {build_line(build)}\n" in render_markdown(document)


@pytest.mark.parametrize("pure_python", [False, True], ids=["as-installed", "pure-python"])
def test_the_build_record_follows_the_install_and_pure_python(pure_python: bool) -> None:
    """In a fresh process: compiled where this install holds the algorithm's extension,
    nowhere under SEGALLOC_PURE_PYTHON=1."""
    env = {key: value for key, value in os.environ.items() if key != "SEGALLOC_PURE_PYTHON"}
    if pure_python:
        env["SEGALLOC_PURE_PYTHON"] = "1"
    names = sorted(plugins().algorithms)
    script = ("import json; from segalloc.bench.runner import environment; "
              f"print(json.dumps(environment({names!r})['build']))")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True, timeout=120)
    build = json.loads(done.stdout)
    assert build["pure_python"] is pure_python
    assert build["algorithms"] == [
        {"name": name, "compiled": not pure_python
         and compiled_installed(plugins().algorithm(name).__module__)} for name in names]


def test_the_build_line_names_each_build() -> None:
    def record(pure_python: bool, **compiled: bool) -> dict[str, Any]:
        return {"pure_python": pure_python,
                "algorithms": [{"name": name, "compiled": flag} for name, flag in compiled.items()]}

    assert build_line(record(False, best_fit=True, sequential_fit=False, segregated_fit=True)) == (
        "build: compiled (best_fit, segregated_fit), interpreted (sequential_fit)")
    assert build_line(record(True, best_fit=False)) == (
        "build: interpreted (best_fit), as SEGALLOC_PURE_PYTHON=1 asks")
    assert build_line(record(False)) == "build: no algorithm"


def test_json_is_sorted_and_loads_back(document: dict[str, Any], tmp_path: Path) -> None:
    text = dump_report(document)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    (tmp_path / "run.json").write_text(text)
    assert load_report(tmp_path / "run.json") == document


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "not a JSON report"), ('{"kind": "other"}', "not a segalloc bench report"),
     ('{"kind": "segalloc-bench", "version": 99}', "version 99 is not one")],
)
def test_load_report_refuses_what_it_cannot_read(content: str, message: str,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_report(path)
    with pytest.raises(FileNotFoundError):
        load_report(tmp_path / "missing.json")


def test_reports_and_figures_are_written(document: dict[str, Any], tmp_path: Path) -> None:
    paths = write_reports(document, tmp_path / "out")
    assert sorted(p.name for p in paths) == ["report.html", "report.json", "report.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    stems = {"footprint", "ns_per_op", "words_per_op", "latency_cdf", "timeline",
             "largest_free", "spread"}
    assert figures == sorted(f"{stem}.{ext}" for stem in stems for ext in ("pdf", "svg"))
    for name in figures:
        data = (tmp_path / "out" / "figures" / name).read_bytes()
        assert data.startswith(b"%PDF") if name.endswith(".pdf") else b"<svg" in data[:500]
    with pytest.raises(NotADirectoryError, match="is a file"):
        write_reports(document, paths[0])


def test_word_traffic_is_drawn_on_a_log_axis_that_shows_every_bar(
        document: dict[str, Any]) -> None:
    # a list walk costs thousands of words where a good fit costs tens: a linear axis would
    # flatten the good fits to slivers
    figure = next(fig for stem, _, fig in build_figures(document) if stem == "words_per_op")
    axis = figure.axes[0]
    means = [cell["figures"]["words_per_op"]["mean"] for cell in document["cells"]
             if cell["status"] == "ok"]
    low, high = axis.get_xlim()
    assert axis.get_xscale() == "log" and low <= min(means) and max(means) <= high
    labels = [label.get_text() for label in axis.get_xticklabels()
              if low <= label.get_position()[0] <= high]
    assert len(labels) >= 2 and all(labels), labels


def test_a_panel_grids_unit_labels_clear_the_figures_axis_label(
        document: dict[str, Any]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for stem, _, figure in build_figures(document):
        if figure._supylabel is None:  # only the grids of panels carry a figure-wide label
            continue
        canvas = FigureCanvasAgg(figure)
        canvas.draw()  # lays the tick labels out, and the axis labels beside them
        renderer = canvas.get_renderer()
        shared = figure._supylabel.get_window_extent(renderer)
        for axis in figure.axes:
            label = axis.yaxis.label
            if label.get_text():
                assert not label.get_window_extent(renderer).overlaps(shared), (stem, axis)


def test_every_ok_cell_has_latency_and_word_counts(document: dict[str, Any]) -> None:
    for cell in document["cells"]:
        f = cell["figures"]
        assert set(f["latency_ns"]) == {"allocate", "free"}  # these loads never reallocate
        for percentiles in f["latency_ns"].values():
            assert list(percentiles) == ["p50", "p90", "p99", "p999", "max"]
            assert list(percentiles.values()) == sorted(percentiles.values())
        assert f["cost_ops"] == f["ops"]  # small loads are counted whole
        assert 1 <= f["lines_per_op"]["mean"] <= f["words_per_op"]["mean"]
        assert set(cell["latency_cdf"]) == set(f["latency_ns"])
    headers, rows = cost_rows(document)
    assert len(rows) == len(document["cells"]) and headers[4] == "alloc p99 ns"


@pytest.mark.parametrize("path", OLD_VERSIONS, ids=lambda path: path.name)
def test_earlier_versions_still_load_render_and_compare(path: Path, tmp_path: Path) -> None:
    old = load_report(path)
    assert old["version"] == int(path.stem.split("_v")[1]) < REPORT_VERSION
    assert "| uniform |" in render_markdown(old)
    assert "build" not in old["environment"] and "- build:" not in render_markdown(old)
    write_reports(old, tmp_path)
    assert (tmp_path / "figures" / "footprint.svg").is_file()
    # no latency recorded then: the new table shows dashes, not a KeyError
    assert all(row[3] is None for row in cost_rows(old)[1])
    result = compare_reports(old, old)
    assert {c["verdict"] for c in result["changes"]} <= {"not significant", "too few runs"}


def test_markdown_has_the_tables(document: dict[str, Any]) -> None:
    text = render_markdown(document)
    assert "| load | algorithm | backend | ops | ns/op | footprint |" in text
    assert "| uniform | sequential_fit | heap |" in text
    assert "Boost reference absent: not asked for" in text
    assert "## Scenarios" in text and "| 1 |" in text


def test_html_is_self_contained_with_svg_figures(document: dict[str, Any]) -> None:
    page = render_html(document)
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//|[^"'#]*\.(js|css|png|svg))""",
                         page), "the page must not load anything"
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 7  # footprint, ns/op, words/op, latency, timeline, largest free, spread
    for svg in svgs:
        xml.dom.minidom.parseString(svg)  # well-formed
    assert "Latency distributions" in page and "Fragmentation over time" in page
    assert page.count("<table>") >= 3


def test_rows_of_unfinished_cells_and_boost_ratios(document: dict[str, Any]) -> None:
    changed = json.loads(json.dumps(document))
    changed["cells"][0].update(status="timeout", error="stopped after 500 of 1,000 operations")
    changed["boost"] = {"available": True, "counterparts": {"sequential_fit": "simple_seq_fit"},
                        "ramp": {"simple_seq_fit": {"ns_per_op": 10.0, "footprint_ratio": 1.0}}}
    headers, rows = summary_rows(changed)
    assert rows[0][3] == "timeout" and rows[0][4] is None
    headers, rows = boost_rows(changed)
    ramp = next(c for c in changed["cells"] if c["load"] == "ramp")["figures"]
    assert rows == [["ramp", "sequential_fit", "simple_seq_fit", round(ramp["ns_per_op"]), 10,
                     ramp["ns_per_op"] / 10.0, ramp["footprint_ratio"], 1.0,
                     ramp["footprint_ratio"]]]
    assert "timeout: uniform sequential_fit heap: stopped after 500" in render_markdown(changed)
    assert "simple_seq_fit" in render_html(changed, figures=[])
