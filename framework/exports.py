"""The views of segment memory this process has handed out, held weakly.

A ctypes object, a numpy array or a buffer view holds an address, so it cannot follow the
memory when a heap segment's ``grow`` / ``shrink_to_fit`` moves it, and a vector's buffer
view cannot follow the buffer when the vector moves or frees it. Rather than let such a view
silently keep reading and writing the old copy, the operation refuses with ``BufferError``
while views are alive, as ``bytearray`` refuses to resize while it is exported.

Only this process's own views are counted (another process's views are not knowable); the
registry is a fact about this process, not segment state, so it is not kept in the segment.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["Exports"]


class Exports:
    """Weak references to handed-out views, each with the block (handle) it views."""

    __slots__ = ("_live",)

    def __init__(self) -> None:
        self._live: dict[int, tuple[int, weakref.ref[Any]]] = {}

    def track(self, view: Any, block: int) -> Any:
        """Remember ``view`` (over the block at ``block``) until it dies; returns ``view``."""
        key = id(view)
        live = self._live

        def forget(ref: weakref.ref[Any]) -> None:
            if live.get(key, (0, None))[1] is ref:
                del live[key]

        live[key] = (block, weakref.ref(view, forget))
        return view

    def block_of(self, view: object) -> int | None:
        """The block ``view`` was handed out for, or None when it is not a tracked view."""
        found = self._live.get(id(view))
        return found[0] if found is not None and found[1]() is view else None

    def count(self, block: int | None = None) -> int:
        """Live views (of ``block`` only, when given)."""
        return sum(1 for at, ref in list(self._live.values())
                   if ref() is not None and (block is None or at == block))

    def refuse(self, block: int | None, operation: str, remedy: str) -> None:
        """``BufferError`` naming how many views would be left on the old memory."""
        alive = self.count(block)
        if alive:
            raise BufferError(f"{operation} would move memory that {alive} object(s) taken from "
                              f"the segment still view; {remedy}")
