"""Boost.Interprocess 1.74's own figures for the documented scenarios, as data.

Copied from ``../shared/reference/boost-1.74-figures.md`` (64-bit, g++ 12 -O2) so that each
scenario's observed figures can be set beside Boost's under the same names. Sizes are bytes,
except the ``received_*`` figures of scenario 6, which count 8-byte elements as Boost's example
does (``allocation_command<std::size_t>``). ``None`` is Boost's "-": no figure measured.
"""

from __future__ import annotations

__all__ = ["BOOST_COUNTERPART", "BOOST_FIGURES", "boost_figures"]

#: our algorithm -> the Boost algorithm it follows (others have no Boost counterpart)
BOOST_COUNTERPART: dict[str, str] = {
    "best_fit": "rbtree_best_fit",
    "sequential_fit": "simple_seq_fit",
}

#: scenario number -> figure name -> Boost algorithm -> value
BOOST_FIGURES: dict[int, dict[str, dict[str, int | None]]] = {
    1: {
        "free_after_create": {"rbtree_best_fit": 65312, "simple_seq_fit": 65328},
        "free_after_allocate_100": {"rbtree_best_fit": 65200, "simple_seq_fit": 65200},
    },
    3: {
        "free_with_named_object": {"rbtree_best_fit": 712, "simple_seq_fit": 712},
        "size_after_grow": {"rbtree_best_fit": 1500, "simple_seq_fit": 1500},
        "free_after_grow": {"rbtree_best_fit": 1212, "simple_seq_fit": 1212},
        "size_after_shrink_to_fit": {"rbtree_best_fit": 304, "simple_seq_fit": 288},
        "free_after_shrink_to_fit": {"rbtree_best_fit": 16, "simple_seq_fit": 0},
    },
    4: {
        "PAYLOAD_PER_ALLOCATION": {"rbtree_best_fit": 8, "simple_seq_fit": 16},
        "ALIGNMENT": {"rbtree_best_fit": 16, "simple_seq_fit": 16},
    },
    6: {
        "received_allocate_new": {"rbtree_best_fit": 1001, "simple_seq_fit": 1000},
        "received_expand_fwd": {"rbtree_best_fit": 3003, "simple_seq_fit": 3000},
        "received_shrink_in_place": {"rbtree_best_fit": 2003, "simple_seq_fit": 2000},
    },
    9: {
        "list_nodes_before_grow": {"rbtree_best_fit": 15, "simple_seq_fit": None},
        "list_nodes_after_grow": {"rbtree_best_fit": 36, "simple_seq_fit": None},
    },
}


def boost_figures(scenario: int, algorithm: str) -> dict[str, int]:
    """Boost's figures for ``scenario`` from the counterpart of ``algorithm`` (ours' name);
    empty when the algorithm has no counterpart or Boost measured nothing there."""
    counterpart = BOOST_COUNTERPART.get(algorithm)
    if counterpart is None:
        return {}
    figures = {}
    for name, by_algorithm in BOOST_FIGURES.get(scenario, {}).items():
        value = by_algorithm[counterpart]
        if value is not None:
            figures[name] = value
    return figures
