"""Comparing two runs: timing verdicts beyond the noise threshold, space figures exactly."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from segalloc.bench.compare import TIME_THRESHOLD, compare_reports, comparison_rows, time_verdict


def _document(ns: float, footprint: float, status: str = "ok") -> dict[str, Any]:
    figures = {"ns_per_op": ns, "footprint_ratio": footprint, "fragmentation_4": footprint - 1,
               "fragmentation_4_policy": 0.01, "frag_at_peak": 0.1, "failures": 0,
               "first_failure_utilisation": None, "peak_live": 1000, "high_water": 1100}
    return {
        "environment": {"machine": {"cpu": "x", "cores": 2}, "python": {"version": "3.11.7"}},
        "cells": [{"load": "uniform", "algorithm": "best_fit", "backend": "heap",
                   "status": status, "figures": figures}],
    }


@pytest.mark.parametrize(
    ("old", "new", "verdict"),
    [(1230.0, 1000.0, "1.23x faster"), (1000.0, 1230.0, "1.23x slower"),
     (1000.0, 1050.0, "not significant"), (1050.0, 1000.0, "not significant"),
     (1000.0, 1000.0 * (1 + TIME_THRESHOLD), "1.10x slower"), (0.0, 5.0, "not significant")],
)
def test_time_verdicts(old: float, new: float, verdict: str) -> None:
    assert time_verdict(old, new) == verdict


def test_same_run_changes_nothing_beyond_timing() -> None:
    result = compare_reports(_document(1000, 1.2), _document(1000, 1.2))
    assert [(c["figure"], c["verdict"]) for c in result["changes"]] == [
        ("ns_per_op", "not significant")]
    assert result["only_old"] == result["only_new"] == result["not_comparable"] == []
    assert result["note"] is None


def test_space_figures_are_reported_when_they_change() -> None:
    result = compare_reports(_document(2000, 1.2), _document(1000, 1.25))
    verdicts = {c["figure"]: (c["old"], c["new"], c["verdict"]) for c in result["changes"]}
    assert verdicts["ns_per_op"] == (2000, 1000, "2.00x faster")
    assert verdicts["footprint_ratio"] == (1.2, 1.25, "changed")
    assert "frag_at_peak" not in verdicts
    headers, rows = comparison_rows(result)
    assert headers[-1] == "verdict" and len(rows) == len(result["changes"])


def test_cells_in_one_run_only_and_unfinished_ones() -> None:
    old, new = _document(1000, 1.2), _document(1000, 1.2, status="timeout")
    extra = copy.deepcopy(new["cells"][0])
    extra["load"] = "ramp"
    new["cells"].append(extra)
    new["environment"]["python"]["version"] = "3.12.0"
    result = compare_reports(old, new)
    assert result["changes"] == []
    assert result["only_new"] == [["ramp", "best_fit", "heap"]]
    assert result["not_comparable"] == [{"cell": ["uniform", "best_fit", "heap"],
                                         "old_status": "ok", "new_status": "timeout"}]
    assert "indicative only" in result["note"]
