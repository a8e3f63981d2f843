"""What changed between two bench runs, beyond noise (``segalloc compare OLD.json NEW.json``).

Cells are matched by (load, algorithm, backend). Two kinds of figure, two rules:

- Timing (``ns_per_op``) is noisy. A change is significant only when the ratio of the two
  exceeds ``TIME_THRESHOLD`` (10 %) either way; it is then said as "1.23x faster" or "1.23x
  slower", else "not significant". 10 % is above the run-to-run spread of a cell's ns/op seen on
  the 2-core development machine for one commit (a few %, up to ~8 % when the other core is
  busy), so a verdict is not noise; compare runs of the same machine and profile.
- Space figures (footprint, fragmentation, failures, utilisation at first failure) come from a
  deterministic replay of the same operations: any difference is a real change of behaviour,
  reported as "changed"; equal figures are left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "SPACE_FIGURES",
    "TIME_THRESHOLD",
    "Change",
    "compare_reports",
    "comparison_rows",
    "time_verdict",
]

#: relative change of ns/op below which a timing difference is "not significant"
TIME_THRESHOLD = 0.10
#: deterministic figures compared exactly (a relative difference above 1e-9 is a change)
SPACE_FIGURES = ("footprint_ratio", "fragmentation_4", "fragmentation_4_policy", "frag_at_peak",
                 "failures", "first_failure_utilisation", "peak_live", "high_water")
_EXACT = 1e-9

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Change:
    """One figure of one cell in both runs, with the verdict."""

    load: str
    algorithm: str
    backend: str
    figure: str
    old: Any
    new: Any
    verdict: str


def time_verdict(old: float, new: float, threshold: float = TIME_THRESHOLD) -> str:
    """'1.23x faster', '1.23x slower' or 'not significant' for ns/op going ``old -> new``."""
    if old <= 0 or new <= 0:
        return "not significant"
    ratio = old / new
    if ratio >= 1 + threshold:
        return f"{ratio:.2f}x faster"
    if 1 / ratio >= 1 + threshold:
        return f"{1 / ratio:.2f}x slower"
    return "not significant"


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return abs(old - new) > _EXACT * max(abs(old), abs(new), 1)
    return bool(old != new)


def _cells(document: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    return {(c["load"], c["algorithm"], c["backend"]): c for c in document["cells"]}


def _environment(document: dict[str, Any]) -> tuple[Any, ...]:
    env = document["environment"]
    return (env["machine"]["cpu"], env["machine"]["cores"], env["python"]["version"])


def compare_reports(old: dict[str, Any], new: dict[str, Any],
                    threshold: float = TIME_THRESHOLD) -> dict[str, Any]:
    """The comparison as JSON-ready data: ``changes`` (every cell's ns/op verdict and each space
    figure that changed), cells ``only_old`` / ``only_new`` / ``not_comparable``, a ``note``."""
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
        changes.append(Change(*key, "ns_per_op", fb["ns_per_op"], fa["ns_per_op"],
                              time_verdict(fb["ns_per_op"], fa["ns_per_op"], threshold)))
        changes.extend(Change(*key, name, fb.get(name), fa.get(name), "changed")
                       for name in SPACE_FIGURES if _differs(fb.get(name), fa.get(name)))
    same_place = _environment(old) == _environment(new)
    return {
        "threshold": threshold,
        "changes": [asdict(change) for change in changes],
        "only_old": [list(k) for k in old_cells if k not in new_cells],
        "only_new": [list(k) for k in new_cells if k not in old_cells],
        "not_comparable": not_comparable,
        "note": None if same_place else
        "the runs differ in machine or Python: timing verdicts are indicative only",
    }


def comparison_rows(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """A table of the changes (the CLI prints it)."""
    headers = ["load", "algorithm", "backend", "figure", "old", "new", "verdict"]
    rows = [[c["load"], c["algorithm"], c["backend"], c["figure"], c["old"], c["new"],
             c["verdict"]] for c in result["changes"]]
    return headers, rows
