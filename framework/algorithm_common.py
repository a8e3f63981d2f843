"""What every memory algorithm repeats (Boost's ``memory_algorithm_common``): the command flags
as plain ints, the guard that turns a damaged word into ``SegmentCorrupt``, the argument checks.

Algorithms may import this module (with ``segalloc.interfaces`` and ``segalloc.errors``); it
imports nothing but those, so it stays below every plugin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from segalloc.errors import InvalidPointer, SegallocError, SegmentCorrupt
from segalloc.interfaces import Command

__all__ = [
    "ALLOCATE_NEW",
    "DAMAGE",
    "EXPAND",
    "EXPAND_BWD",
    "EXPAND_FWD",
    "NOTHROW",
    "SHRINK_IN_PLACE",
    "SHRINKS",
    "TRY_SHRINK_IN_PLACE",
    "ZERO_MEMORY",
    "check_grow",
    "check_region",
    "command_can_succeed",
    "damage_is_corruption",
    "damaged",
]

# ------------------------------------------------------------------------------------------
# Command flags as plain ints: an IntFlag operation costs about a microsecond, a hot path
# (reallocation is one operation in five of a real trace) tests these with int arithmetic.
# ------------------------------------------------------------------------------------------
ALLOCATE_NEW = int(Command.ALLOCATE_NEW)
EXPAND_FWD = int(Command.EXPAND_FWD)
EXPAND_BWD = int(Command.EXPAND_BWD)
SHRINK_IN_PLACE = int(Command.SHRINK_IN_PLACE)
TRY_SHRINK_IN_PLACE = int(Command.TRY_SHRINK_IN_PLACE)
NOTHROW = int(Command.NOTHROW)
ZERO_MEMORY = int(Command.ZERO_MEMORY)
#: either expansion
EXPAND = EXPAND_FWD | EXPAND_BWD
#: either shrink (a shrink is served alone: it takes precedence over every other operation)
SHRINKS = SHRINK_IN_PLACE | TRY_SHRINK_IN_PLACE

# ------------------------------------------------------------------------------------------
# The damage guard
# ------------------------------------------------------------------------------------------
#: what a damaged word provokes in code that trusts it: an index outside the word view
#: (IndexError), a value no word can hold or a negative shift count (ValueError, OverflowError).
#: A ``try`` costs nothing until it catches, so hot paths catch these inline (letting
#: ``SegallocError`` through first: ``InvalidPointer`` is a ValueError); cold entry points use
#: ``damage_is_corruption``.
DAMAGE = (IndexError, ValueError, OverflowError)

#: an algorithm (or the compiled core class it derives from, which is not a MemoryAlgorithm)
_A = TypeVar("_A")
_P = ParamSpec("_P")
_T = TypeVar("_T")


def damaged(algorithm: str, where: str, exc: BaseException) -> SegmentCorrupt:
    """The ``SegmentCorrupt`` reporting ``exc``, met in ``where`` of ``algorithm``, as damage."""
    return SegmentCorrupt(f"{algorithm}: {where}: the segment's structures are damaged ({exc})")


def damage_is_corruption(method: Callable[Concatenate[_A, _P], _T]) -> Callable[Concatenate[_A, _P], _T]:
    """Decorate a cold entry point of an algorithm: a ``DAMAGE`` exception it meets becomes
    ``SegmentCorrupt`` naming the algorithm and the method; segalloc's own errors pass."""

    @functools.wraps(method)
    def guarded(self: _A, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(self, *args, **kwargs)
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged(getattr(self, "name", type(self).__name__), method.__name__, exc) from exc

    return guarded


# ------------------------------------------------------------------------------------------
# Argument checks. The segment manager has checked types and signs; these are the checks of
# the algorithm's own contract, so a bare algorithm answers the same way under every plugin.
# ------------------------------------------------------------------------------------------
def check_region(buffer_size: int, start: int, size: int, *, alignment: int, min_size: int) -> None:
    """``format``'s region: ``start`` a non-negative multiple of ``alignment``, at least
    ``min_size`` bytes, inside the buffer; ``ValueError`` naming the parameter otherwise."""
    if start < 0 or start % alignment:
        raise ValueError(f"start={start} must be a non-negative multiple of {alignment}")
    if size < min_size:
        raise ValueError(f"size={size} is below the minimum region of {min_size} bytes")
    if start + size > buffer_size:
        raise ValueError(f"size={size} from start={start} does not fit a buffer of "
                         f"{buffer_size} bytes")


def check_grow(extra: int, region_end: int, buffer_size: int) -> None:
    """``grow``'s argument: ``extra`` non-negative and already in the buffer past the region."""
    if extra < 0:
        raise ValueError(f"extra={extra} must be non-negative")
    if region_end + extra > buffer_size:
        raise ValueError(f"extra={extra}: the buffer has no room to grow the region by that")


def command_can_succeed(flags: int, limit_size: int, preferred_size: int, reuse: int | None) -> bool:
    """Boost's preconditions of ``allocation_command``: False when the command fails at once
    (answered ``(None, 0)``: a shrink to a preferred size above its limit, a request whose
    limit exceeds its preferred size); ``InvalidPointer`` (a ValueError that damage guards let
    through) when a shrink or an expansion without ``ALLOCATE_NEW`` names no block."""
    if flags & SHRINKS:
        if reuse is None:
            raise InvalidPointer("allocation_command: reuse=None, but a shrink needs the block to shrink")
        return preferred_size <= limit_size
    if reuse is None and not flags & ALLOCATE_NEW:
        raise InvalidPointer("allocation_command: reuse=None, but without ALLOCATE_NEW the command "
                         "needs the block to expand")
    return limit_size <= preferred_size
