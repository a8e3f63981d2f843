"""``SegmentList``: a circular doubly linked list in the segment (Boost's list<T>)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from segalloc.containers.proxy import WORD
from segalloc.containers.sequence import _Sequence
from segalloc.deep_check import Claim, register_segment_type
from segalloc.journal import ENTRIES_PER_CALL
from segalloc.words import Words

T = TypeVar("T")

# ------------------------------------------------------------------------------------------
# SegmentList: a circular doubly linked list (Boost's list<T>)
#
#  List header, in the constructed object's block at H (its handle); it is the sentinel of the
#  circular list, so an empty list links to itself:
#
#   H+0   +------------------------------------------+
#         | NEXT     offset of the first node (or H) |  word L_NEXT
#   H+8   +------------------------------------------+
#         | PREV     offset of the last node (or H)  |  word L_PREV
#   H+16  +------------------------------------------+
#         | LENGTH   number of nodes                 |  word L_LENGTH
#   H+24  +------------------------------------------+
#
#  Node (one block of the algorithm each, at N):
#
#   N+0   NEXT  (word L_NEXT)    N+8  PREV  (word L_PREV)    N+16  VALUE  (sizeof(T) bytes)
#
#  Node of a list of values that vary in length (``str``, ``bytes``):
#
#   N+0   NEXT    N+8  PREV    N+16  VLEN  value bytes (word L_VLEN)    N+24  VALUE
# ------------------------------------------------------------------------------------------

L_NEXT = 0
L_PREV = 1
L_LENGTH = 2
L_VLEN = 2
LIST_HEADER_SIZE = 3 * WORD
LIST_VALUE = 2 * WORD
LIST_VARIABLE_VALUE = 3 * WORD


class SegmentList(_Sequence, Generic[T]):
    """A doubly linked list in the segment, with Python's list protocol.

    ``insert``/``pop``/``del`` at either end are O(1); indexing walks from the nearer end.
    """

    __slots__ = ()
    _HEADER_SIZE = LIST_HEADER_SIZE
    _VARIABLE_ELEMENTS = True

    def _clear_header(self) -> None:
        w = self._words()
        h = self.segment_handle
        hw = h >> 3
        w[hw + L_NEXT] = h
        w[hw + L_PREV] = h
        w[hw + L_LENGTH] = 0

    def _length(self, w: Words) -> int:
        """The stored length, checked against the allocated bytes (a node per element)."""
        return self._checked_count(int(w[(self.segment_handle >> 3) + L_LENGTH]),
                                   self._least_node())

    def _least_node(self) -> int:
        """The fewest bytes a node takes (links, a length when values vary, a fixed-size
        value), which bounds how many nodes the allocated bytes can hold; the least of every
        layout when a process that never named the element type runs the deep check."""
        if not hasattr(self, "_element"):
            return LIST_VALUE + 1
        return self._value_offset() + (self._element.size or 0)

    def _nodes(self, w: Words) -> list[int]:
        """Every node offset in order, checking the links as it walks."""
        return self._ring(w, self._length(w))

    def _node_at(self, w: Words, position: int) -> int:
        """The node at ``position`` (0 <= position < length), walking from the nearer end."""
        h = self.segment_handle
        length = self._length(w)
        if position < length // 2 + 1:
            node, link, steps = w[(h >> 3) + L_NEXT], L_NEXT, position
        else:
            node, link, steps = w[(h >> 3) + L_PREV], L_PREV, length - 1 - position
        try:
            for _ in range(steps):
                if node == h or node & (WORD - 1):
                    raise self._corrupt(f"bad link {node} on the way to item {position}")
                node = w[(node >> 3) + link]
        except IndexError:
            raise self._corrupt(f"link {node} points outside the segment") from None
        if node == h or node & (WORD - 1):
            raise self._corrupt(f"bad link {node} on the way to item {position}")
        return int(node)

    def _value_offset(self) -> int:
        """Where a node's value starts: after the links, and the length when values vary."""
        return LIST_VALUE if self._element.size is not None else LIST_VARIABLE_VALUE

    def _value_span(self, w: Words, node: int) -> tuple[int, int]:
        """``(start, bytes)`` of a node's value, refused when a damaged length puts it past
        the segment's end."""
        size = self._element.size
        if size is not None:
            return node + LIST_VALUE, size
        try:
            length = int(w[(node >> 3) + L_VLEN])
        except IndexError:
            raise self._corrupt(f"node {node} lies outside the segment") from None
        start = node + LIST_VARIABLE_VALUE
        if start + length > len(self._buf):
            raise self._corrupt(f"the value of node {node} runs past the segment's end")
        return start, length

    def _element_span(self, w: Words, index: int) -> tuple[int, int]:
        return self._value_span(w, self._node_at(w, index))

    def _raw_all(self, w: Words) -> list[bytes]:
        buf = self._buf
        spans = [self._value_span(w, node) for node in self._nodes(w)]
        return [bytes(buf[start : start + length]) for start, length in spans]

    def _fill_node(self, w: Words, node: int, raw: bytes) -> None:
        if self._element.size is None:
            w[(node >> 3) + L_VLEN] = len(raw)
        self.segment.write(node + self._value_offset(), raw)

    def _store_at(self, w: Words, index: int, raw: bytes) -> None:
        """Overwrite in place when the length is the same, else swap in a new node (allocated
        first: ``BadAlloc`` changes nothing)."""
        old = self._node_at(w, index)
        start, length = self._value_span(w, old)
        if length == len(raw):
            self.segment.write(start, raw)
            return
        (new,) = self._allocate_all([self._value_offset() + len(raw)])
        self._fill_node(w, new, raw)
        ow, nw = old >> 3, new >> 3
        after, before = int(w[ow + L_NEXT]), int(w[ow + L_PREV])
        w[nw + L_NEXT], w[nw + L_PREV] = after, before
        w[(before >> 3) + L_NEXT] = new
        w[(after >> 3) + L_PREV] = new
        self.segment.algorithm.deallocate(old)

    def _insert_raw(self, w: Words, index: int, raws: list[bytes]) -> None:
        h = self.segment_handle
        hw = h >> 3
        successor = h if index == self._length(w) else self._node_at(w, index)
        nodes = self._allocate_all([self._value_offset() + len(raw) for raw in raws])
        predecessor = int(w[(successor >> 3) + L_PREV])
        for node, raw in zip(nodes, raws, strict=True):
            self._fill_node(w, node, raw)
            nw = node >> 3
            w[nw + L_PREV] = predecessor
            w[(predecessor >> 3) + L_NEXT] = node
            predecessor = node
        w[(predecessor >> 3) + L_NEXT] = successor
        w[(successor >> 3) + L_PREV] = predecessor
        w[hw + L_LENGTH] += len(nodes)

    def _delete_indices(self, w: Words, indices: list[int]) -> None:
        if not indices:
            return
        if len(indices) == 1:
            doomed = [self._node_at(w, indices[0])]
        else:
            nodes = self._nodes(w)
            doomed = [nodes[i] for i in indices]
        deallocate = self.segment.algorithm.deallocate
        self.segment.reserve_journal((ENTRIES_PER_CALL + 2) * len(doomed) + 1)
        for node in doomed:
            nw = node >> 3
            after, before = w[nw + L_NEXT], w[nw + L_PREV]
            w[(before >> 3) + L_NEXT] = after
            w[(after >> 3) + L_PREV] = before
            deallocate(node)
        w[(self.segment_handle >> 3) + L_LENGTH] -= len(doomed)

    def _release_all(self) -> None:
        w = self._words()
        deallocate = self.segment.algorithm.deallocate
        nodes = self._nodes(w)
        self.segment.reserve_journal(ENTRIES_PER_CALL * len(nodes) + 8)
        for node in nodes:
            deallocate(node)
        self._clear_header()

    def _verify(self, w: Words, claim: Claim) -> None:
        least = self._least_node()
        length = self._checked_count(int(w[(self.segment_handle >> 3) + L_LENGTH]), least)
        nodes = self._ring(w, length)
        self._check_back_links(w, nodes)
        known = hasattr(self, "_element")
        for node in nodes:
            start, size = self._value_span(w, node) if known else (node + least, 0)
            claim(node, start - node + size)

    def appendleft(self, value: Any) -> None:
        """Add ``value`` at the front (Boost's ``push_front``); ``BadAlloc`` changes nothing."""
        self.insert(0, value)


register_segment_type(SegmentList, family=SegmentList.__name__)
