"""Comparing two runs: ns/op verdicts from repeated replays (a rank test and an effect size),
deterministic figures exactly, runs of different parameters refused."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segalloc import hookimpl, plugins
from segalloc.bench.compare import (
    ALPHA,
    DEFAULT_THRESHOLD,
    MIN_RUNS,
    compare_reports,
    comparison_rows,
    mann_whitney_p,
    time_verdict,
)
from segalloc.bench.runner import CellSpec, Load, merge_rounds, run_cell


def _document(runs: list[float], footprint: float, status: str = "ok") -> dict[str, Any]:
    figures = {"ns_per_op": sorted(runs)[(len(runs) - 1) // 2], "ns_per_op_runs": runs,
               "footprint_ratio": footprint, "fragmentation_4": footprint - 1,
               "fragmentation_4_policy": 0.01, "frag_at_peak": 0.1, "failures": 0,
               "first_failure_utilisation": None, "peak_live": 1000, "high_water": 1100,
               "words_per_op": {"mean": 12.5, "max": 40}}
    return {
        "environment": {"machine": {"cpu": "x", "cores": 2}, "python": {"version": "3.11.7"}},
        "parameters": {"profile": "quick", "scale": 10_000, "seed": 0, "samples": 32,
                       "trace_limit": 122_000, "cell_seconds": 3.0, "jobs": 2},
        "cells": [{"load": "uniform", "algorithm": "best_fit", "backend": "heap",
                   "status": status, "figures": figures}],
    }


FAST = [1000.0, 1010.0, 990.0, 1005.0, 995.0]


def test_rank_test_exact_values() -> None:
    # 5 against 5 wholly separated: 2 of the C(10, 5) orderings are as extreme
    assert mann_whitney_p(FAST, [2000.0 + x for x in FAST]) == pytest.approx(2 / math.comb(10, 5))
    # interleaved: U sits at its mean, nothing to see
    assert mann_whitney_p([1, 3, 5, 7, 9], [2, 4, 6, 8, 10]) > 0.5
    # ties fall back to the normal approximation, still symmetric
    tied = ([1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 3.0, 3.0])
    assert mann_whitney_p(*tied) == pytest.approx(mann_whitney_p(*reversed(tied)))
    with pytest.raises(ValueError):
        mann_whitney_p([], [1.0])


@pytest.mark.parametrize(
    ("old", "new", "verdict"),
    [(FAST, [x * 1.23 for x in FAST], "1.23x slower"),
     ([x * 1.23 for x in FAST], FAST, "1.23x faster"),
     (FAST, [x * 1.03 for x in FAST], "not significant"),  # significant, but below 5 %
     (FAST, [800.0, 1300.0, 900.0, 1250.0, 1100.0], "not significant"),  # beyond 5 %, noise
     ([1000.0], [2000.0], "too few runs")],
)
def test_time_verdicts(old: list[float], new: list[float], verdict: str) -> None:
    assert time_verdict(old, new)[0] == verdict


def test_same_run_changes_nothing_beyond_timing() -> None:
    result = compare_reports(_document(FAST, 1.2), _document(FAST, 1.2))
    assert [(c["figure"], c["verdict"]) for c in result["changes"]] == [
        ("ns_per_op", "not significant")]
    assert result["only_old"] == result["only_new"] == result["not_comparable"] == []
    assert result["warnings"] == [] and result["slower"] == []


def test_exact_figures_are_reported_when_they_change() -> None:
    new = _document([x / 2 for x in FAST], 1.25)
    new["cells"][0]["figures"]["words_per_op"] = {"mean": 12.5, "max": 41}
    result = compare_reports(_document(FAST, 1.2), new)
    verdicts = {c["figure"]: (c["old"], c["new"], c["verdict"]) for c in result["changes"]}
    assert verdicts["ns_per_op"][2] == "2.00x faster"
    assert verdicts["footprint_ratio"] == (1.2, 1.25, "changed")
    assert verdicts["words_per_op"][2] == "changed"
    assert "frag_at_peak" not in verdicts
    headers, rows = comparison_rows(result)
    assert headers[-2:] == ["verdict", "p"] and len(rows) == len(result["changes"])
    assert "12.50 / 41" in [row[5] for row in rows]


def test_a_slower_cell_is_listed_for_the_exit_code() -> None:
    result = compare_reports(_document(FAST, 1.2), _document([x * 1.5 for x in FAST], 1.2))
    assert result["slower"] == [["uniform", "best_fit", "heap"]]


def test_different_parameters_are_refused_unless_forced() -> None:
    new = _document(FAST, 1.2)
    new["parameters"]["scale"] = 500
    new["parameters"]["jobs"] = 1  # how fast, not what: never a difference
    with pytest.raises(ValueError, match=r"different parameters.*scale: 10000 -> 500"):
        compare_reports(_document(FAST, 1.2), new)
    result = compare_reports(_document(FAST, 1.2), new, force=True)
    assert result["warnings"] == ["different parameters: scale: 10000 -> 500"]


def test_single_replays_are_not_judged() -> None:
    result = compare_reports(_document([1000.0], 1.2), _document([3000.0], 1.2))
    assert result["changes"][0]["verdict"] == "too few runs" and result["slower"] == []
    assert any("--repeat" in warning for warning in result["warnings"])


def test_cells_in_one_run_only_and_unfinished_ones() -> None:
    old, new = _document(FAST, 1.2), _document(FAST, 1.2, status="timeout")
    extra = copy.deepcopy(new["cells"][0])
    extra["load"] = "ramp"
    new["cells"].append(extra)
    new["environment"]["python"]["version"] = "3.12.0"
    result = compare_reports(old, new)
    assert result["changes"] == []
    assert result["only_new"] == [["ramp", "best_fit", "heap"]]
    assert result["not_comparable"] == [{"cell": ["uniform", "best_fit", "heap"],
                                         "old_status": "ok", "new_status": "timeout"}]
    assert any("indicative only" in warning for warning in result["warnings"])


def test_runs_of_different_builds_are_warned_about() -> None:
    old, new = _document(FAST, 1.2), _document(FAST, 1.2)
    for document, compiled in ((old, True), (new, False)):
        document["environment"]["build"] = {
            "pure_python": not compiled, "algorithms": [{"name": "best_fit", "compiled": compiled}]}
    assert compare_reports(old, old)["warnings"] == []
    assert compare_reports(old, new)["warnings"] == [
        "the runs ran different builds (build: compiled (best_fit); then build: interpreted "
        "(best_fit), as SEGALLOC_PURE_PYTHON=1 asks): a speed change may be the build's"]
    del old["environment"]["build"]  # a run recorded before builds were
    assert compare_reports(old, new)["warnings"] == []


def _noisy_runs(rng: random.Random, centre: float, repeat: int = 5) -> list[float]:
    """Replays as a shared machine gives them: a few % of spread, now and then a slow one."""
    return [centre * rng.lognormvariate(0, 0.04) * (1.3 if rng.random() < 0.05 else 1.0)
            for _ in range(repeat)]


def _sweep(rng: random.Random, centres: list[float]) -> dict[str, Any]:
    document = _document(FAST, 1.2)
    template = document["cells"][0]
    document["cells"] = []
    for number, centre in enumerate(centres):
        runs = _noisy_runs(rng, centre)
        cell = copy.deepcopy(template)
        cell["load"] = f"load{number}"
        cell["figures"].update(ns_per_op=sorted(runs)[2], ns_per_op_runs=runs)
        document["cells"].append(cell)
    return document


def test_two_runs_of_the_same_code_flag_at_most_one_cell_in_twenty() -> None:
    rng = random.Random(16)
    centres = [rng.uniform(500, 50_000) for _ in range(400)]
    result = compare_reports(_sweep(rng, centres), _sweep(rng, centres))
    flagged = [c for c in result["changes"] if c["verdict"] != "not significant"]
    assert len(flagged) <= len(centres) // 20, flagged


# -- a real slowdown: an algorithm doing its work, then waiting as long again --------------
@pytest.fixture
def slow_best_fit() -> Iterator[str]:
    base = plugins().algorithm("best_fit")

    def doubled(method: Any) -> Any:
        def slow(self: Any, *args: Any) -> Any:
            start = time.perf_counter_ns()
            result = method(self, *args)
            spent = time.perf_counter_ns() - start
            while time.perf_counter_ns() - start < 2 * spent:
                pass
            return result
        return slow

    slow = type("SlowBestFit", (base,), {
        "name": "slow_best_fit", "allocate": doubled(base.allocate),
        "deallocate": doubled(base.deallocate),
        "allocation_command": doubled(base.allocation_command)})

    class Plugin:
        @hookimpl
        def segalloc_register_algorithms(self, register: Any) -> None:
            register(slow)

    plugin = Plugin()
    plugins().register(plugin, "slow_best_fit")
    try:
        yield "slow_best_fit"
    finally:
        plugins().unregister(plugin)


def _measured(algorithms: tuple[str, str], loads: list[Load], scratch: Path,
              rounds: int) -> list[dict[str, Any]]:
    """A document for each algorithm (both cells called best_fit, so they are compared), their
    replays interleaved round by round as the runner's rounds are."""
    replays: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for number in range(rounds + 1):
        for load in loads:
            for algorithm in algorithms:
                # round 0 runs the probes (not what this test is about) and warms up
                cell = run_cell(CellSpec(algorithm, "heap", load, 0, str(scratch), round=number))
                if number:
                    replays.setdefault((algorithm, load.name), []).append(cell)
    documents = []
    for algorithm in algorithms:
        document = _document(FAST, 1.2)
        document["cells"] = [{**merge_rounds(replays[(algorithm, load.name)]),
                              "algorithm": "best_fit"} for load in loads]
        documents.append(document)
    return documents


def test_a_real_twofold_slowdown_is_flagged_every_time(slow_best_fit: str,
                                                       tmp_path: Path) -> None:
    loads = [Load(name, "workload", seed=3, scale=1500)
             for name in ("uniform", "larson", "realloc_growth")]
    old, new = _measured(("best_fit", slow_best_fit), loads, tmp_path, MIN_RUNS + 1)
    result = compare_reports(old, new)
    timing = [c for c in result["changes"] if c["figure"] == "ns_per_op"]
    assert len(timing) == 3
    for change in timing:
        assert change["verdict"].endswith("x slower") and change["p_value"] < ALPHA, (
            change, old["cells"], new["cells"])
        assert float(change["verdict"].split("x")[0]) > 1 + DEFAULT_THRESHOLD
    assert len(result["slower"]) == 3
    # the slowdown is in time only: the same placements, so no exact figure changed
    assert {c["figure"] for c in result["changes"]} == {"ns_per_op"}
