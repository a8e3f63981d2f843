"""``segalloc bench``, ``report`` and ``compare``: a tiny end-to-end run, exit codes, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from compiled_build import compiled_installed

from segalloc import plugins
from segalloc.bench.cli import main
from segalloc.bench.report import build_line
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
    assert sorted(p.name for p in run.iterdir()) == ["figures", "report.html", "report.json",
                                                     "report.md"]
    assert {p.suffix for p in (run / "figures").iterdir()} == {".svg", ".pdf"}
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
         "--no-figures", "--out", str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "Footprint ratio" in done.stdout and "Nanoseconds per operation" in done.stdout
    assert re.search(r"^uniform +\d\.\d{4}$", done.stdout, re.M), done.stdout
    assert "wrote" in done.stdout
    assert "ETA" not in done.stderr and "\r" not in done.stderr and "\x1b" not in done.stdout


@pytest.mark.parametrize("pure_python", [False, True], ids=["as-installed", "pure-python"])
def test_bench_says_which_build_runs(pure_python: bool, tmp_path: Path) -> None:
    """The summary's first line is the build report.json records: compiled where the install
    holds the algorithm's extension, interpreted under SEGALLOC_PURE_PYTHON=1."""
    env = {key: value for key, value in os.environ.items() if key != "SEGALLOC_PURE_PYTHON"}
    if pure_python:
        env["SEGALLOC_PURE_PYTHON"] = "1"
    algorithms = ["segregated_fit", "sequential_fit"]
    done = subprocess.run(
        [sys.executable, "-m", "segalloc", "bench", "--algorithm", algorithms[0],
         "--algorithm", algorithms[1], "--workload", "uniform", "--scale", "300",
         "--no-shipped-traces", "--jobs", "1", "--no-scenarios", "--no-boost", "--no-figures",
         "--out", str(tmp_path)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: a cell erred (other tests pin cells)
    build = json.loads((tmp_path / "report.json").read_text())["environment"]["build"]
    assert build == {"pure_python": pure_python, "algorithms": [
        {"name": name, "compiled": not pure_python
         and compiled_installed(plugins().algorithm(name).__module__)} for name in algorithms]}
    assert done.stdout.splitlines()[0] == build_line(build)


def test_bench_json_prints_the_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *TINY, "--no-scenarios", "--no-boost", "--json", "--no-figures",
                 "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "figures").exists()
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "segalloc-bench" and len(document["cells"]) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--algorithm", "nope"], "unknown algorithm 'nope'; registered: .*sequential_fit"),
     (["--workload", "nope"], "unknown workload 'nope'; known: uniform"),
     (["--trace", "/no/such/file.trace"], "trace file not found: /no/such/file.trace"),
     (["--jobs", "999"], "jobs must be between 1 and"),
     (["--jobs", "-1"], r"jobs must be between 1 and .*\(0: every core\)"),
     (["--scale", "-5"], r"--scale must be 0 \(the profile's\) or more, got -5"),
     (["--cell-seconds", "-1"], r"--cell-seconds must be 0 \(the profile's\) or more"),
     (["--cell-seconds", "nan"], r"--cell-seconds must be 0"),
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
    captured = capsys.readouterr()
    assert "too few runs" in captured.out and "footprint_ratio" not in captured.out
    assert "WARNING: cells with fewer than 4 replays" in captured.err
    assert main(["compare", path, path, "--json", "--threshold", "10%"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threshold"] == pytest.approx(0.1) and result["slower"] == []


def test_compare_exits_1_when_a_cell_got_slower(run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads((run / "report.json").read_text())
    for cell in document["cells"]:
        cell["figures"]["cpu_ns_per_op_runs"] = [1000.0, 1010.0, 990.0, 1005.0, 995.0]
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(document))
    for cell in document["cells"]:
        cell["figures"]["cpu_ns_per_op_runs"] = [2000.0, 2010.0, 1990.0, 2005.0, 1995.0]
    new.write_text(json.dumps(document))
    assert main(["compare", str(old), str(new)]) == 1
    assert "2.00x slower" in capsys.readouterr().out
    assert main(["compare", str(new), str(old)]) == 0  # faster is no failure
    document["parameters"]["seed"] = 7
    new.write_text(json.dumps(document))
    assert main(["compare", str(old), str(new)]) == 1
    assert "different parameters" in capsys.readouterr().err
    assert main(["compare", str(old), str(new), "--force"]) == 1  # slower, warned


def test_report_refuses_a_document_without_cells_and_a_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps({"kind": "segalloc-bench", "version": 3}))
    assert main(["report", str(cut)]) == 1
    err = capsys.readouterr().err
    assert "without its 'cells' list" in err and err.count("\n") == 1
    assert main(["report", str(tmp_path)]) == 1
    assert "is a folder; a report.json file was expected" in capsys.readouterr().err


def test_bench_output_cut_short_ends_quietly(tmp_path: Path) -> None:
    done = subprocess.run(
        f"{sys.executable} -m segalloc plugins | head -1", shell=True, capture_output=True,
        text=True, check=False)
    assert done.stdout == "Algorithms\n" and "Traceback" not in done.stderr, done.stderr


def test_shm_ls_and_rm_see_only_segalloc_segments(shm_name: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from segalloc import ManagedSharedMemory, Mode

    other = Path("/dev/shm") / f"{shm_name}-other"
    other.write_bytes(b"NOTOURS!" + bytes(56))
    try:
        with ManagedSharedMemory(Mode.CREATE_ONLY, shm_name, 1 << 16):
            pass
        assert main(["shm", "ls", "--json"]) == 0
        names = {entry["name"] for entry in json.loads(capsys.readouterr().out)}
        assert shm_name in names and other.name not in names
        assert main(["shm", "rm", other.name]) == 1
        assert "no segalloc shared-memory segment" in capsys.readouterr().err
        assert other.exists()
        assert main(["shm", "rm", f"/{shm_name}"]) == 0
        assert not (Path("/dev/shm") / shm_name).exists()
    finally:
        other.unlink(missing_ok=True)


def test_a_plugin_that_fails_to_import_is_one_warning_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib
    import importlib.metadata

    host_module = importlib.import_module("segalloc.plugins")  # the name is also a function
    installed = importlib.metadata.entry_points
    broken = importlib.metadata.EntryPoint(name="broken_fit", value="segalloc_no_such_module",
                                           group="segalloc")
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [*installed(group=group), broken])
    monkeypatch.setattr(host_module, "_host", None)
    assert main(["plugins", "--json"]) == 0
    captured = capsys.readouterr()
    assert "sequential_fit" in captured.out  # the others still load
    assert captured.err == ("segalloc: warning: plugin entry point 'broken_fit' "
                            "(segalloc_no_such_module) failed to import and is skipped: "
                            "ModuleNotFoundError: No module named 'segalloc_no_such_module'\n")
