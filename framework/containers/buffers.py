"""The growable buffer ``SegmentVector`` and ``SegmentString`` keep their elements in: its
header words and the helpers that reserve, free and check it, written once for both.

Compiled (``buffers.pxd``), the helpers are C functions the compiled containers call.
"""

from __future__ import annotations

import cython

from segalloc.containers.proxy import WORD, _Proxy
from segalloc.deep_check import Claim
from segalloc.errors import BadAlloc
from segalloc.interfaces import Command
from segalloc.words import Words

# ------------------------------------------------------------------------------------------
# Growable buffers: SegmentVector and SegmentString keep their elements in one block
#
#  Buffer header, in the constructed object's block at H:
#
#   H+0   +------------------------------------------+
#         | DATA      offset of the buffer block / 0 |  word B_DATA
#   H+8   +------------------------------------------+
#         | LENGTH    elements in use                |  word B_LENGTH
#   H+16  +------------------------------------------+
#         | CAPACITY  elements the buffer holds      |  word B_CAPACITY
#   H+24  +------------------------------------------+
#
#  (SegmentString adds H+24 CHARS, the code-point count, and counts its elements in bytes.)
# ------------------------------------------------------------------------------------------

B_DATA = 0
B_LENGTH = 1
B_CAPACITY = 2
BUFFER_HEADER_SIZE = 3 * WORD
#: tunable: first capacity a vector / string buffer gets, in elements
_MIN_CAPACITY = 4


def _reserve(proxy: _Proxy, w: Words, elem_size: cython.Py_ssize_t,
             needed: cython.Py_ssize_t) -> cython.Py_ssize_t:
    """Make room for ``needed`` elements (a buffer whose header its caller checked); the
    buffer's offset. Expands in place when the algorithm can (``EXPAND_FWD``), else moves to a
    new block; ``BadAlloc`` changes nothing. Like every container's, its allocator calls go to
    the segment's algorithm inside the container's transaction, each after a journal safe
    point."""
    hw: cython.Py_ssize_t = proxy.segment_handle >> 3
    data: cython.Py_ssize_t = w.signed[hw + B_DATA]
    capacity: cython.Py_ssize_t = w.signed[hw + B_CAPACITY]
    if needed <= capacity:
        return data
    seg = proxy.segment
    length: cython.Py_ssize_t = w.signed[hw + B_LENGTH]
    limit: cython.Py_ssize_t = len(w.octets) // elem_size
    if needed > limit:
        raise BadAlloc(f"no room for {needed} elements of {type(proxy).__name__}")
    wanted: cython.Py_ssize_t = min(max(needed, capacity + capacity // 2, _MIN_CAPACITY), limit)
    if data:
        seg.reserve_journal()
        offset, received = seg.algorithm.allocation_command(
            Command.EXPAND_FWD | Command.NOTHROW, needed * elem_size, wanted * elem_size, data
        )
        if offset is not None:
            assert offset == data, "a forward expansion keeps the block where it is"
            w.put(hw + B_CAPACITY, received // elem_size)
            return data
        seg.refuse_if_viewed(data, f"growing this {type(proxy).__name__} past its capacity")
    seg.reserve_journal()
    offset, received = seg.algorithm.allocation_command(
        Command.ALLOCATE_NEW | Command.NOTHROW, needed * elem_size, wanted * elem_size, None
    )
    if offset is None:
        raise BadAlloc(f"no room for {needed} elements of {type(proxy).__name__}")
    used: cython.Py_ssize_t = length * elem_size
    proxy.journal_room(w, used // WORD + 2)
    w.store_bytes(offset, bytes(proxy._buf[data : data + used]))
    if data:
        proxy.deallocate(data)
    w.put(hw + B_DATA, offset)
    w.put(hw + B_CAPACITY, received // elem_size)
    return offset


def _release_buffer(proxy: _Proxy, w: Words) -> None:
    """Free the buffer (refused while a view of it lives) and empty the header's fields."""
    hw: cython.Py_ssize_t = proxy.segment_handle >> 3
    data: cython.Py_ssize_t = w.signed[hw + B_DATA]
    if data:
        proxy.segment.refuse_if_viewed(data, f"freeing this {type(proxy).__name__}'s buffer")
        proxy.deallocate(data)
    w.put(hw + B_DATA, 0)
    w.put(hw + B_LENGTH, 0)
    w.put(hw + B_CAPACITY, 0)


def _verify_buffer(proxy: _Proxy, claim: Claim, data: int, length: int, capacity: int,
                   size: int) -> None:
    """A growable buffer's fields agree (length within capacity; no block, no capacity) and
    its block is live, holds the capacity and belongs to this container alone."""
    if length > capacity or bool(data) != bool(capacity) or data & (WORD - 1):
        raise proxy._corrupt(f"buffer {data} of capacity {capacity} cannot hold {length} items")
    proxy._checked_count(capacity, size, "capacity")
    if data:
        claim(data, capacity * size)
