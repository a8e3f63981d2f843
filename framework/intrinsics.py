"""Bit operations the algorithms' hot paths use, in their interpreted form.

Compiled modules ``cimport`` these names from ``intrinsics.pxd`` instead, where they are inline
C over the compiler's builtins (``__builtin_clzll`` / ``__builtin_ctzll``): one definition per
build, the same answers (the differential test holds them to it)."""

from __future__ import annotations

__all__ = ["bit_length", "lowest_bit"]

#: ``x.bit_length()`` for ``x >= 0``: the position of the highest set bit plus one (0 for 0)
bit_length = int.bit_length


def lowest_bit(x: int) -> int:
    """The position of the lowest set bit of ``x > 0``."""
    return (x & -x).bit_length() - 1
