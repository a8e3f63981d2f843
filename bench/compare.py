"""What changed between two bench runs, beyond noise (``segalloc compare OLD.json NEW.json``).

Cells are matched by (load, algorithm, backend). Two kinds of figure, two rules:

- Timing (``ns_per_op``) is noisy, and one replay a side says nothing about noise. The verdict
  is taken from each cell's repeated replays (``figures.cpu_ns_per_op_runs``, the replays'
  thread CPU time an operation, which leaves out the time the process waited for a core;
  ``ns_per_op_runs``, wall time, for reports without it; the runner replays
  every cell once a round, round after round, so the replays sample different moments of the
  machine as two runs do): the change is significant only when a two-sided Mann-Whitney U
  rank test says the two samples differ (p below ``ALPHA``) *and* the medians differ by more
  than the threshold (``DEFAULT_THRESHOLD``, 5 %, ``--threshold``) either way. It is then said
  as "1.23x faster" or "1.23x slower", else "not significant". A rank test needs enough
  replays to ever reach p < 0.05: with fewer than ``MIN_RUNS`` a side (``--repeat 4`` or
  more) the verdict is "too few runs". Without the effect size, a rank test on a shared
  machine flags tiny real drifts; without the test, a threshold alone flags noise (as the
  single-replay rule of report versions 1 and 2 did: 49 of 51 cells of two back-to-back runs).
- Deterministic figures (footprint, fragmentation, failures, words and lines per operation)
  come from a deterministic replay of the same operations: any difference is a real change of
  behaviour, reported as "changed"; equal figures are left out.

Two runs made with different parameters (profile, scale, seed, loads' cut, samples) did not
measure the same thing: ``compare_reports`` refuses them (``ValueError`` naming what differs)
unless ``force``, which keeps the difference in ``warnings``. A different machine or Python is
a warning too, and so is a different build (compiled or interpreted algorithms, where both
runs recorded theirs). ``slower`` lists the cells whose ns/op got slower beyond the threshold: the CLI
exits 1 when there are any (for CI).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from segalloc.bench.report import build_line

__all__ = [
    "ALPHA",
    "DEFAULT_THRESHOLD",
    "EXACT_FIGURES",
    "MEASUREMENT_PARAMETERS",
    "MIN_RUNS",
    "Change",
    "compare_reports",
    "comparison_rows",
    "mann_whitney_p",
    "time_verdict",
]

#: minimum relative change of the median ns/op for a verdict (0.05: 5 %)
DEFAULT_THRESHOLD = 0.05
#: significance level of the rank test
ALPHA = 0.05
#: replays a side below which no rank test of two samples can reach p < ALPHA (4 vs 4: 0.029)
MIN_RUNS = 4
#: deterministic figures compared exactly (a relative difference above 1e-9 is a change)
EXACT_FIGURES = ("footprint_ratio", "fragmentation_1", "fragmentation_4",
                 "fragmentation_4_policy", "frag_at_peak", "failures",
                 "failures_with_enough_free", "first_failure_utilisation", "peak_live",
                 "high_water", "words_per_op", "reads_per_op", "writes_per_op", "lines_per_op",
                 "cost_ops")
#: parameters that decide what a run measures (jobs and executor only decide how fast it runs)
MEASUREMENT_PARAMETERS = ("profile", "scale", "seed", "samples", "trace_limit", "cell_seconds")
_EXACT = 1e-9
#: samples up to this size a side get the exact U distribution; larger ones the normal one
_EXACT_LIMIT = 30

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Change:
    """One figure of one cell in both runs, with the verdict (and the rank test's p for
    ns/op)."""

    load: str
    algorithm: str
    backend: str
    figure: str
    old: Any
    new: Any
    verdict: str
    p_value: float | None = None


@cache
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """How many orderings of m + n distinct values give each U = 0 .. m*n."""
    if m == 0 or n == 0:
        return (1,)
    # the largest value is either one of the m (adding n to U) or one of the n
    with_m, with_n = _u_counts(m - 1, n), _u_counts(m, n - 1)
    counts = [0] * (m * n + 1)
    for u, ways in enumerate(with_m):
        counts[u + n] += ways
    for u, ways in enumerate(with_n):
        counts[u] += ways
    return tuple(counts)


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test that ``a`` and ``b`` come from one
    distribution: exact for small samples without ties, the normal approximation (with tie
    correction) otherwise."""
    m, n = len(a), len(b)
    if not m or not n:
        raise ValueError("the rank test needs a value on each side")
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    tied = len(set(a) | set(b)) < m + n
    if not tied and m <= _EXACT_LIMIT and n <= _EXACT_LIMIT:
        counts = _u_counts(m, n)
        total = sum(counts)
        low = sum(counts[: int(u) + 1]) / total
        high = sum(counts[int(u):]) / total
        return min(1.0, 2 * min(low, high))
    ranks: dict[float, list[int]] = {}
    for position, value in enumerate(sorted([*a, *b]), 1):
        ranks.setdefault(value, []).append(position)
    ties = sum(len(group) ** 3 - len(group) for group in ranks.values())
    variance = m * n / 12 * ((m + n + 1) - ties / ((m + n) * (m + n - 1)))
    if variance <= 0:
        return 1.0
    z = (abs(u - m * n / 2) - 0.5) / math.sqrt(variance)
    return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def time_verdict(old_runs: Sequence[float], new_runs: Sequence[float],
                 threshold: float = DEFAULT_THRESHOLD) -> tuple[str, float | None]:
    """('1.23x faster' | '1.23x slower' | 'not significant' | 'too few runs', p) for ns/op
    going from ``old_runs`` to ``new_runs`` (each cell's replays)."""
    if min(len(old_runs), len(new_runs)) < MIN_RUNS:
        return "too few runs", None
    old, new = statistics.median(old_runs), statistics.median(new_runs)
    p = mann_whitney_p(old_runs, new_runs)
    if old <= 0 or new <= 0 or p >= ALPHA:
        return "not significant", p
    ratio = old / new
    if ratio >= 1 + threshold:
        return f"{ratio:.2f}x faster", p
    if 1 / ratio >= 1 + threshold:
        return f"{1 / ratio:.2f}x slower", p
    return "not significant", p


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return abs(old - new) > _EXACT * max(abs(old), abs(new), 1)
    return bool(old != new)


def _cells(document: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    return {(c["load"], c["algorithm"], c["backend"]): c for c in document["cells"]}


def _environment(document: dict[str, Any]) -> tuple[Any, ...]:
    env = document["environment"]
    return (env["machine"]["cpu"], env["machine"]["cores"], env["python"]["version"])


def _parameter_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    before, after = old.get("parameters", {}), new.get("parameters", {})
    return [f"{name}: {before.get(name)!r} -> {after.get(name)!r}"
            for name in MEASUREMENT_PARAMETERS if before.get(name) != after.get(name)]


def _runs(before: dict[str, Any], after: dict[str, Any]) -> tuple[list[float], list[float]]:
    """The two cells' replays to judge: CPU ns/op where both runs have it (report version 3),
    else wall ns/op (reports before version 2 have only the one figure)."""
    if before.get("cpu_ns_per_op_runs") and after.get("cpu_ns_per_op_runs"):
        return list(before["cpu_ns_per_op_runs"]), list(after["cpu_ns_per_op_runs"])
    return ([*(before.get("ns_per_op_runs") or [before["ns_per_op"]])],
            [*(after.get("ns_per_op_runs") or [after["ns_per_op"]])])


def compare_reports(old: dict[str, Any], new: dict[str, Any],
                    threshold: float = DEFAULT_THRESHOLD, force: bool = False) -> dict[str, Any]:
    """The comparison as JSON-ready data: ``changes`` (every cell's ns/op verdict and each exact
    figure that changed), ``slower`` (cells slower beyond the threshold), cells ``only_old`` /
    ``only_new`` / ``not_comparable``, and ``warnings``. ``ValueError`` when the runs'
    parameters differ, unless ``force``."""
    if not 0 <= threshold < 10:
        raise ValueError(f"threshold must be a fraction between 0 and 10 (0.05: 5 %), got "
                         f"{threshold}")
    differences = _parameter_differences(old, new)
    if differences and not force:
        raise ValueError("the runs were made with different parameters, so they did not measure "
                         "the same thing (" + "; ".join(differences) + "); --force compares "
                         "them anyway")
    warnings = [f"different parameters: {difference}" for difference in differences]
    if _environment(old) != _environment(new):
        warnings.append("the runs differ in machine or Python: timing verdicts are indicative "
                        "only")
    builds = [document["environment"].get("build") for document in (old, new)]
    if None not in builds and builds[0] != builds[1]:
        warnings.append(f"the runs ran different builds ({build_line(builds[0])}; then "
                        f"{build_line(builds[1])}): a speed change may be the build's")
    old_cells, new_cells = _cells(old), _cells(new)
    changes: list[Change] = []
    not_comparable = []
    for key in [k for k in old_cells if k in new_cells]:
        before, after = old_cells[key], new_cells[key]
        if before["status"] != "ok" or after["status"] != "ok":
            not_comparable.append({"cell": list(key), "old_status": before["status"],
                                   "new_status": after["status"]})
            continue
        fb, fa = before["figures"], after["figures"]
        verdict, p = time_verdict(*_runs(fb, fa), threshold)
        changes.append(Change(*key, "ns_per_op", fb["ns_per_op"], fa["ns_per_op"], verdict, p))
        changes.extend(Change(*key, name, fb.get(name), fa.get(name), "changed")
                       for name in EXACT_FIGURES if _differs(fb.get(name), fa.get(name)))
    if any(c.verdict == "too few runs" for c in changes):
        warnings.append(f"cells with fewer than {MIN_RUNS} replays cannot be judged: run both "
                        "with --repeat 5")
    return {
        "threshold": threshold,
        "alpha": ALPHA,
        "changes": [asdict(change) for change in changes],
        "slower": [[c.load, c.algorithm, c.backend] for c in changes
                   if c.figure == "ns_per_op" and c.verdict.endswith("slower")],
        "only_old": [list(k) for k in old_cells if k not in new_cells],
        "only_new": [list(k) for k in new_cells if k not in old_cells],
        "not_comparable": not_comparable,
        "warnings": warnings,
    }


def comparison_rows(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """A table of the changes (the CLI prints it)."""
    headers = ["load", "algorithm", "backend", "figure", "old", "new", "verdict", "p"]
    rows = [[c["load"], c["algorithm"], c["backend"], c["figure"], _shown(c["old"]),
             _shown(c["new"]), c["verdict"], c["p_value"]] for c in result["changes"]]
    return headers, rows


def _shown(value: Any) -> Any:
    """A figure as a table shows it (a {mean, max} pair as 'mean / max')."""
    if isinstance(value, dict) and set(value) == {"mean", "max"}:
        return f"{value['mean']:.2f} / {value['max']}"
    return value
