"""The sweep: planning, one process per cell, the local pool and a Dask cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from segalloc import plugins
from segalloc.bench.runner import (
    PROFILES,
    BenchParameters,
    CellSpec,
    Load,
    Progress,
    available_cores,
    execute,
    merge_rounds,
    plan_cells,
    plan_loads,
    run_cell,
    shipped_traces,
)
from segalloc.bench.traces import write_trace
from segalloc.bench.workloads import generate

ALGORITHMS = sorted(plugins().algorithms)
TINY = BenchParameters(algorithms=("sequential_fit",), workloads=("uniform", "adversarial"),
                       scale=400, samples=4, shipped_traces=False, scenarios=False, boost=False)


def test_the_real_traces_are_shipped() -> None:
    assert [path.name for path in shipped_traces()] == ["perl.trace.gz", "sqlite.trace.gz"]


def test_defaults_are_every_algorithm_the_heap_and_every_workload() -> None:
    params = BenchParameters().resolved()
    assert params.algorithms == tuple(ALGORITHMS)
    assert params.backends == ("heap",)
    assert "fill_to_failure" in params.workloads and "cv_hyperexponential" in params.workloads
    assert (params.scale, params.trace_limit) == (PROFILES["quick"].scale,
                                                  PROFILES["quick"].trace_limit)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"algorithms": ("nope",)}, "unknown algorithm 'nope'; registered: .*sequential_fit"),
     ({"backends": ("nope",)}, "unknown backend 'nope'; registered: .*heap"),
     ({"workloads": ("nope",)}, "unknown workload 'nope'; known: uniform"),
     ({"profile": "huge"}, "unknown profile 'huge'; known: quick, full"),
     ({"jobs": 0}, "jobs must be between 1 and"),
     ({"jobs": 10_000}, "jobs must be between 1 and"),
     ({"repeat": 0}, "repeat must be at least 1"),
     ({"executor": "dask"}, "needs --scheduler")],
)
def test_bad_parameters_are_refused_by_name(change: dict[str, object], message: str) -> None:
    fields = {**TINY.__dict__, **change}
    with pytest.raises(ValueError, match=message):
        BenchParameters(**fields).resolved()


def test_traces_are_cut_to_the_limit_and_written_for_boost(tmp_path: Path) -> None:
    trace_file = tmp_path / "mine.trace"
    write_trace(generate("peaks", 0, 2000), trace_file)
    params = BenchParameters(**{**TINY.__dict__, "traces": (str(trace_file),),
                                "trace_limit": 500}).resolved()
    loads = plan_loads(params, tmp_path)
    assert [load.name for load in loads] == ["uniform", "adversarial", "mine.first-500.trace.gz"]
    cut = loads[-1]
    assert cut.trace is not None and len(cut.trace.ops) == 500
    assert cut.path is not None and Path(cut.path).is_file()
    cells = plan_cells(params, loads, tmp_path)
    assert [(c.load.name, c.algorithm) for c in cells][:2] == [("uniform", "sequential_fit"),
                                                               ("adversarial", "sequential_fit")]


def test_a_missing_trace_fails_before_anything_runs(tmp_path: Path) -> None:
    params = BenchParameters(**{**TINY.__dict__, "traces": (str(tmp_path / "none.gz"),)})
    with pytest.raises(FileNotFoundError, match="none.gz"):
        plan_loads(params.resolved(), tmp_path)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_run_cell_reports_the_figures(algorithm: str, tmp_path: Path) -> None:
    load = Load("adversarial", "workload", seed=1, scale=600)
    cell = run_cell(CellSpec(algorithm, "heap", load, 4, str(tmp_path)))
    assert (cell["status"], cell["error"]) == ("ok", None)
    assert cell["figures"]["ops"] > 0 and cell["figures"]["footprint_ratio"] >= 1.0
    assert len(cell["timeline"]["op"]) == 4
    assert sum(cell["free_histogram_at_peak"].values()) == cell["figures"]["free_blocks_at_peak"]


@pytest.mark.parametrize("backend", sorted(plugins().backends))
def test_run_cell_on_every_backend(backend: str, tmp_path: Path) -> None:
    load = Load("uniform", "workload", seed=1, scale=300)
    cell = run_cell(CellSpec("sequential_fit", backend, load, 2, str(tmp_path)))
    assert cell["status"] == "ok", cell["error"]
    assert list(tmp_path.iterdir()) == []  # a named backend's segment is removed
    if os.path.isdir("/dev/shm"):
        assert not [n for n in os.listdir("/dev/shm") if f"segalloc-bench-{os.getpid()}-" in n]


@pytest.mark.parametrize("backend", ["heap", "mapped_file"])
def test_rounds_merge_into_the_replay_of_median_speed(backend: str, tmp_path: Path) -> None:
    load = Load("adversarial", "workload", seed=1, scale=600)
    rounds = [run_cell(CellSpec("best_fit", backend, load, 4, str(tmp_path), round=number))
              for number in range(3)]
    cell = merge_rounds(rounds)
    runs = cell["figures"]["ns_per_op_runs"]
    assert cell["status"] == "ok" and len(runs) == 3 and len(set(runs)) > 1
    assert runs == [r["figures"]["ns_per_op"] for r in rounds]
    assert cell["figures"]["ns_per_op"] == sorted(runs)[1]
    assert len(cell["figures"]["cpu_ns_per_op_runs"]) == 3
    # the probes run in round 0 only; every other figure is the same in every round
    assert "words_per_op" in rounds[0]["figures"] and "words_per_op" not in rounds[1]["figures"]
    timing = {"ns_per_op", "ns_per_op_runs", "cpu_ns_per_op_runs", "seconds"}
    probes = set(rounds[0]["figures"]) - set(rounds[1]["figures"])
    assert {k: v for k, v in cell["figures"].items() if k not in timing | probes} == {
        k: v for k, v in rounds[2]["figures"].items() if k not in timing}
    assert list(tmp_path.iterdir()) == []  # every replay's segment is removed


def test_a_round_that_did_not_finish_makes_the_cell(tmp_path: Path) -> None:
    load = Load("uniform", "workload", seed=1, scale=3000)
    ok = run_cell(CellSpec("sequential_fit", "heap", load, 2, str(tmp_path)))
    late = run_cell(CellSpec("sequential_fit", "heap", load, 2, str(tmp_path), 0.0, round=1))
    assert merge_rounds([ok, late]) == late and late["status"] == "timeout"


def test_a_failing_algorithm_is_an_error_cell_not_a_crash(tmp_path: Path) -> None:
    load = Load("uniform", "workload", seed=1, scale=300, segment_size=16)
    cell = run_cell(CellSpec("sequential_fit", "heap", load, 2, str(tmp_path)))
    assert cell["status"] == "error" and cell["error"]
    assert cell["figures"] == {}


def test_a_cell_over_its_budget_is_a_timeout(tmp_path: Path) -> None:
    load = Load("uniform", "workload", seed=1, scale=3000)
    cell = run_cell(CellSpec("sequential_fit", "heap", load, 2, str(tmp_path), 0.0))
    assert cell["status"] == "timeout" and len(cell["figures"]["ns_per_op_runs"]) == 1
    assert "stopped after 500 of" in cell["error"]
    assert "words_per_op" not in cell["figures"]  # a timeout is not probed


def test_every_backend_replays_the_same_allocator_from_the_same_region(tmp_path: Path) -> None:
    params = BenchParameters(**{**TINY.__dict__, "workloads": ("uniform",), "scale": 2000,
                                "backends": ("heap", "shared_memory", "mapped_file")}).resolved()
    cells = execute(plan_cells(params, plan_loads(params, tmp_path), tmp_path), params)
    assert [(c["backend"], c["status"], c["error"]) for c in cells] == [
        ("heap", "ok", None), ("shared_memory", "ok", None), ("mapped_file", "ok", None)]
    assert len({c["figures"]["high_water"] for c in cells}) == 1
    assert len({str(c["figures"]["words_per_op"]) for c in cells}) == 1


def test_local_pool_runs_each_cell_in_a_process_of_its_own(tmp_path: Path) -> None:
    params = BenchParameters(**{**TINY.__dict__, "jobs": min(2, available_cores())}).resolved()
    specs = plan_cells(params, plan_loads(params, tmp_path), tmp_path)
    cells = execute(specs, params)
    assert [(c["load"], c["status"]) for c in cells] == [("uniform", "ok"), ("adversarial", "ok")]
    assert all(c["figures"]["ops"] > 0 for c in cells)


def test_dask_executor_on_a_local_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        params = BenchParameters(**{**TINY.__dict__, "executor": "dask",
                                    "scheduler": cluster.scheduler_address}).resolved()
        specs = plan_cells(params, plan_loads(params, tmp_path), tmp_path)
        cells = execute(specs, params)
    local = execute(specs, BenchParameters(**{**TINY.__dict__}).resolved())
    assert [(c["status"], c["error"]) for c in cells] == [("ok", None)] * len(specs)
    assert [c["figures"]["high_water"] for c in cells] == [
        c["figures"]["high_water"] for c in local]


def test_progress_bar_draws_on_a_terminal_only(tmp_path: Path) -> None:
    class Terminal:
        def __init__(self, tty: bool) -> None:
            self.text, self.tty = "", tty

        def isatty(self) -> bool:
            return self.tty

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

    shown, hidden = Terminal(True), Terminal(False)
    for stream in (shown, hidden):
        bar = Progress(2, stream)  # type: ignore[arg-type]
        bar.advance("first")
        bar.advance("second")
    assert "2/2" in shown.text and "second" in shown.text and "ETA" in shown.text
    assert "second\n" in shown.text  # the finished bar stays, on its own line
    assert hidden.text == ""
