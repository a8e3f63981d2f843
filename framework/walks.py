"""Bounded, cycle-detecting walks along links read from a segment.

A hostile or damaged segment may link a chain back into itself, or claim a length that its
bytes could never hold (a 1 GiB *sparse* file weighs 16 KiB on disk but claims room for 67
million nodes). Bounding a walk by the claimed segment size alone lets such a file cost
minutes and gigabytes. So every walk over in-segment links (the name index's chains, the
containers' links and chains, the algorithms' free lists) steps through a ``LinkWalk``:

- Brent's cycle detection (R. P. Brent, "An improved Monte Carlo factorization algorithm",
  1980): a remembered node, moved to the current one whenever the steps since the last move
  reach a power of two; meeting it again means a cycle. It finds a cycle of length ``lam``
  entered after ``mu`` steps within ``mu + 2 * lam`` steps, at the cost of one compare and one
  counter per step, and keeps no set of visited nodes (no memory that grows with the walk).
- a step budget the caller derives from what the segment really holds (a stored count checked
  against the allocator's used bytes, the number of live or free blocks), never from the
  claimed size: a chain longer than that raises ``SegmentCorrupt`` too.
"""

from __future__ import annotations

from segalloc.errors import SegmentCorrupt

__all__ = ["LinkWalk"]


class LinkWalk:
    """One walk along links: ``step(node)`` for every node reached, in order.

    ``what`` names the chain in the ``SegmentCorrupt`` it raises (``"named-object chain"``),
    ``bound`` what the budget is (``"its stored length"``).
    """

    __slots__ = ("_bound", "_left", "_power", "_since", "_saved", "what")

    def __init__(self, budget: int, what: str, bound: str = "the segment holds") -> None:
        self._bound = f"{bound} ({budget})"
        self._left = budget
        self._power = 1
        self._since = 0
        self._saved = -1
        self.what = what

    def step(self, node: int) -> None:
        """Account for reaching ``node``: ``SegmentCorrupt`` when it closes a cycle or the walk
        is longer than the budget."""
        if node == self._saved:
            raise SegmentCorrupt(f"{self.what} runs in a cycle (through {node})")
        self._left -= 1
        if self._left < 0:
            raise SegmentCorrupt(f"{self.what} is longer than {self._bound}")
        self._since += 1
        if self._since == self._power:
            self._saved = node
            self._power <<= 1
            self._since = 0
