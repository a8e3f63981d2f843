"""Bit and byte operations the hot paths use, in their interpreted form.

Compiled modules ``cimport`` these names from ``intrinsics.pxd`` instead, where they are inline
C over the compiler's builtins (``__builtin_clzll`` / ``__builtin_ctzll``): one definition per
build, the same answers (the differential test holds them to it)."""

from __future__ import annotations

__all__ = ["bit_length", "copy_bytes", "lowest_bit", "same_bytes"]

#: ``x.bit_length()`` for ``x >= 0``: the position of the highest set bit plus one (0 for 0)
bit_length = int.bit_length


def lowest_bit(x: int) -> int:
    """The position of the lowest set bit of ``x > 0``."""
    return (x & -x).bit_length() - 1


def same_bytes(view: memoryview, at: int, data: bytes) -> bool:
    """Whether the bytes of ``view`` at ``at`` are ``data`` (``IndexError`` past its end)."""
    if at < 0 or at + len(data) > len(view):
        raise IndexError(f"bytes [{at}, {at + len(data)}) are outside the segment")
    return view[at : at + len(data)] == data


def copy_bytes(out: memoryview, at: int, data: bytes) -> None:
    """``out[at : at + len(data)] = data`` (``IndexError`` past its end)."""
    if at < 0 or at + len(data) > len(out):
        raise IndexError(f"bytes [{at}, {at + len(data)}) are outside the segment")
    out[at : at + len(data)] = data
