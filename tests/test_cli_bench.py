"""``segalloc bench``, ``report`` and ``compare``: a tiny end-to-end run, exit codes, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from segalloc.bench.cli import main
from segalloc.bench.traces import write_trace
from segalloc.bench.workloads import generate

TINY = ["--algorithm", "sequential_fit", "--workload", "uniform", "--workload", "fill_to_failure",
        "--scale", "800", "--no-shipped-traces", "--jobs", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny bench run with a trace of its own, scenarios and (if it builds) Boost."""
    out = tmp_path_factory.mktemp("bench")
    trace = out / "tiny.trace.gz"
    write_trace(generate("peaks", 0, 800), trace)
    assert main(["bench", *TINY, "--trace", str(trace), "--out", str(out / "run")]) == 0
    return out / "run"


def test_bench_writes_the_three_reports(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sorted(p.name for p in run.iterdir()) == ["report.html", "report.json", "report.md"]
    document = json.loads((run / "report.json").read_text())
    assert [c["load"] for c in document["cells"]] == ["uniform", "fill_to_failure",
                                                      "tiny.trace.gz"]
    fill = document["cells"][1]["figures"]
    assert fill["failures"] > 0 and 0 < fill["first_failure_utilisation"] < 1
    assert fill["fragmentation_4_policy"] is None  # a capped heap has no policy estimate
    boost = document["boost"]
    if boost["available"]:
        assert set(boost["tiny.trace.gz"]) == {"rbtree_best_fit", "simple_seq_fit"}
        assert "| tiny.trace.gz | sequential_fit | simple_seq_fit |" in (
            run / "report.md").read_text()
    else:
        assert boost["reason"]


def test_bench_prints_a_summary_and_no_progress_off_a_terminal(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "segalloc", "bench", *TINY, "--no-scenarios", "--no-boost",
         "--out", str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "Footprint ratio" in done.stdout and "Nanoseconds per operation" in done.stdout
    assert re.search(r"^uniform +\d\.\d{4}$", done.stdout, re.M), done.stdout
    assert "wrote" in done.stdout
    assert "[#" not in done.stderr and "\r" not in done.stderr


def test_bench_json_prints_the_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *TINY, "--no-scenarios", "--no-boost", "--json",
                 "--out", str(tmp_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "segalloc-bench" and len(document["cells"]) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--algorithm", "nope"], "unknown algorithm 'nope'; registered: .*sequential_fit"),
     (["--workload", "nope"], "unknown workload 'nope'; known: uniform"),
     (["--trace", "/no/such/file.trace"], "trace file not found: /no/such/file.trace"),
     (["--jobs", "999"], "jobs must be between 1 and"),
     (["--executor", "dask"], "needs --scheduler")],
)
def test_bench_errors_exit_1_with_a_message(extra: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *TINY, *extra, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("segalloc: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_malformed_trace_line_is_named_with_its_number(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.trace"
    bad.write_text("a 1 100\nf 1\na 2 lots\n")
    assert main(["bench", *TINY, "--trace", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert "bad.trace:3: sizes must be integers" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--profile", "enormous"])
    assert stop.value.code == 2
    assert "invalid choice: 'enormous'" in capsys.readouterr().err


def test_report_rebuilds_md_and_html(run: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run / "report.json"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == (run / "report.md").read_text()
    assert (tmp_path / "report.html").read_text() == (run / "report.html").read_text()
    assert main(["report", str(tmp_path / "missing.json")]) == 1
    assert "report file not found" in capsys.readouterr().err


def test_compare_a_run_with_itself(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(run / "report.json")
    assert main(["compare", path, path]) == 0
    out = capsys.readouterr().out
    assert "not significant" in out and "faster" not in out and "changed" not in out
    assert main(["compare", path, path, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {c["verdict"] for c in result["changes"]} == {"not significant"}
