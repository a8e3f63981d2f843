"""``SegmentList``: a circular doubly linked list in the segment (Boost's list<T>).

Compiled (Cython's pure-Python mode, ``list.pxd``): ``_ListCore`` holds the layout, its walks
and link updates C methods over the typed word view; ``SegmentList`` adds the generic class.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import cython

from segalloc.containers.proxy import _UNCHECKED_BYTES, WORD
from segalloc.containers.sequence import _Sequence
from segalloc.deep_check import Claim, register_segment_type
from segalloc.errors import BadAlloc
from segalloc.journal import ENTRIES_PER_CALL
from segalloc.kernel import NO_MEMORY
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
#: journal entries a node's links and length take when it is linked in (its value's words
#: on top)
_NODE_ENTRIES = 6
# the imported constants as C values
_WORD = cython.declare(cython.Py_ssize_t, WORD)
_UNCHECKED = cython.declare(cython.Py_ssize_t, _UNCHECKED_BYTES)
_PER_CALL = cython.declare(cython.Py_ssize_t, ENTRIES_PER_CALL)
_NO_MEMORY = cython.declare(cython.Py_ssize_t, NO_MEMORY)


@cython.cclass
class _ListCore(_Sequence):
    """The list's layout under the list protocol (``SegmentList`` is the public class): every
    link is checked (aligned, inside the segment, not the header where a node is due) before
    anything is read through it, and walks are bounded by the stored length."""

    def clear_header(self, w: Words) -> cython.int:
        h: cython.Py_ssize_t = self.segment_handle
        hw: cython.Py_ssize_t = h >> 3
        w.put(hw + L_NEXT, h)
        w.put(hw + L_PREV, h)
        w.put(hw + L_LENGTH, 0)
        return 0

    def length(self, w: Words) -> cython.Py_ssize_t:
        """The stored length, checked against the allocated bytes (a node per element)."""
        count: cython.Py_ssize_t = w.signed[(self.segment_handle >> 3) + L_LENGTH]
        least: cython.Py_ssize_t = self.least_node()
        if 0 <= count <= _UNCHECKED // least:
            return count
        return self._checked_count(w[(self.segment_handle >> 3) + L_LENGTH], least)

    def least_node(self) -> cython.Py_ssize_t:
        """The fewest bytes a node takes (links, a length when values vary, a fixed-size
        value), which bounds how many nodes the allocated bytes can hold; the least of every
        layout when a process that never named the element type runs the deep check."""
        if self.element is None:
            return LIST_VALUE + 1
        return self.value_offset() + max(self.element_size, 0)

    def value_offset(self) -> cython.Py_ssize_t:
        """Where a node's value starts: after the links, and the length when values vary."""
        return LIST_VALUE if self.element_size >= 0 else LIST_VARIABLE_VALUE

    def check_node(self, w: Words, node: cython.Py_ssize_t, position: cython.Py_ssize_t
                   ) -> cython.int:
        """Refuse a link that is not a node: the header, unaligned, or outside the segment."""
        if node == self.segment_handle or node & (_WORD - 1) or node <= 0 \
                or node > len(w.octets) - self.least_node():
            raise self._corrupt(f"bad link {node} on the way to item {position}")
        return 0

    def check_neighbour(self, w: Words, node: cython.Py_ssize_t) -> cython.int:
        """Refuse a link to a node's neighbour that is neither a node nor the header."""
        if node == self.segment_handle:
            return 0
        if node & (_WORD - 1) or node <= 0 or node > len(w.octets) - self.least_node():
            raise self._corrupt(f"bad link {node} to a neighbouring node")
        return 0

    def node_at(self, w: Words, position: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The node at ``position`` (0 <= position < length), walking from the nearer end."""
        h: cython.Py_ssize_t = self.segment_handle
        length: cython.Py_ssize_t = self.length(w)
        link: cython.Py_ssize_t = L_NEXT
        steps: cython.Py_ssize_t = position
        if position >= length // 2 + 1:
            link = L_PREV
            steps = length - 1 - position
        node: cython.Py_ssize_t = w.signed[(h >> 3) + link]
        for _ in range(steps):
            self.check_node(w, node, position)
            node = w.signed[(node >> 3) + link]
        self.check_node(w, node, position)
        return node

    def value_span(self, w: Words, node: cython.Py_ssize_t) -> tuple[cython.Py_ssize_t,
                                                                      cython.Py_ssize_t]:
        """``(start, bytes)`` of a (checked) node's value, refused when a damaged length puts
        it past the segment's end."""
        if self.element_size >= 0:
            return node + LIST_VALUE, self.element_size
        size: cython.Py_ssize_t = w.signed[(node >> 3) + L_VLEN]
        start: cython.Py_ssize_t = node + LIST_VARIABLE_VALUE
        if size < 0 or size > len(w.octets) - start:
            raise self._corrupt(f"the value of node {node} runs past the segment's end")
        return start, size

    def element_span(self, w: Words, position: cython.Py_ssize_t) -> tuple[cython.Py_ssize_t,
                                                                             cython.Py_ssize_t]:
        return self.value_span(w, self.node_at(w, position))

    def collect(self, w: Words, decode: cython.bint) -> list[Any]:
        h: cython.Py_ssize_t = self.segment_handle
        length: cython.Py_ssize_t = self.length(w)
        buf = self._buf
        found: list[Any] = []
        node: cython.Py_ssize_t = w.signed[h >> 3]
        start: cython.Py_ssize_t
        size: cython.Py_ssize_t
        index: cython.Py_ssize_t
        for index in range(length):
            self.check_node(w, node, index)
            start, size = self.value_span(w, node)
            found.append(self.value(w, buf, start, size, decode))
            node = w.signed[node >> 3]
        if node != h:
            raise self._corrupt(f"the chain does not close after {length} items")
        return found

    def new_node(self, w: Words, raw: bytes) -> cython.Py_ssize_t:
        """A node holding ``raw``, not linked yet; ``BadAlloc`` (the operation then rolls
        back whatever it did) when there is no room."""
        node: cython.Py_ssize_t = self.allocate(self.value_offset() + len(raw))
        if node == _NO_MEMORY:
            raise BadAlloc(f"no room for a {type(self).__name__} node")
        self.journal_room(w, len(raw) // _WORD + _NODE_ENTRIES)
        if self.element_size < 0:
            w.put((node >> 3) + L_VLEN, len(raw))
        w.store_bytes(node + self.value_offset(), raw)
        return node

    def put_raw(self, w: Words, position: cython.Py_ssize_t, raw: bytes) -> cython.int:
        """Overwrite in place when the length is the same, else swap in a new node."""
        old: cython.Py_ssize_t = self.node_at(w, position)
        start: cython.Py_ssize_t
        size: cython.Py_ssize_t
        start, size = self.value_span(w, old)
        if size == len(raw):
            self.journal_room(w, size // _WORD + 2)
            w.store_bytes(start, raw)
            return 0
        after: cython.Py_ssize_t = w.signed[(old >> 3) + L_NEXT]
        before: cython.Py_ssize_t = w.signed[(old >> 3) + L_PREV]
        self.check_neighbour(w, after)
        self.check_neighbour(w, before)
        new: cython.Py_ssize_t = self.new_node(w, raw)
        w.put((new >> 3) + L_NEXT, after)
        w.put((new >> 3) + L_PREV, before)
        w.put((before >> 3) + L_NEXT, new)
        w.put((after >> 3) + L_PREV, new)
        self.deallocate(old)
        return 0

    def insert_raws(self, w: Words, index: cython.Py_ssize_t, raws: list) -> cython.int:  # type: ignore[type-arg]
        h: cython.Py_ssize_t = self.segment_handle
        length: cython.Py_ssize_t = self.length(w)
        successor: cython.Py_ssize_t = h if index == length else self.node_at(w, index)
        predecessor: cython.Py_ssize_t = w.signed[(successor >> 3) + L_PREV]
        self.check_neighbour(w, predecessor)
        if len(raws) > 1:
            self.segment.reserve_journal(
                (_PER_CALL + _NODE_ENTRIES) * len(raws) + sum([len(raw) for raw in raws]) // _WORD)
        node: cython.Py_ssize_t
        for raw in raws:
            node = self.new_node(w, raw)
            w.put((node >> 3) + L_PREV, predecessor)
            w.put((predecessor >> 3) + L_NEXT, node)
            predecessor = node
        w.put((predecessor >> 3) + L_NEXT, successor)
        w.put((successor >> 3) + L_PREV, predecessor)
        w.put((h >> 3) + L_LENGTH, length + len(raws))
        return 0

    def delete_positions(self, w: Words, positions: list) -> cython.int:  # type: ignore[type-arg]
        if not positions:
            return 0
        length: cython.Py_ssize_t = self.length(w)
        doomed: list[int]
        if len(positions) == 1:
            doomed = [self.node_at(w, positions[0])]
        else:
            nodes = self._ring(w, length)
            doomed = [nodes[i] for i in positions]
        self.segment.reserve_journal((_PER_CALL + 2) * len(doomed) + 1)
        node: cython.Py_ssize_t
        after: cython.Py_ssize_t
        before: cython.Py_ssize_t
        for node in doomed:
            after = w.signed[(node >> 3) + L_NEXT]
            before = w.signed[(node >> 3) + L_PREV]
            self.check_neighbour(w, after)
            self.check_neighbour(w, before)
            w.put((before >> 3) + L_NEXT, after)
            w.put((after >> 3) + L_PREV, before)
            self.deallocate(node)
        w.put((self.segment_handle >> 3) + L_LENGTH, length - len(doomed))
        return 0

    def _release_all(self) -> None:
        w: Words = self.current_words()
        nodes = self._ring(w, self.length(w))
        self.segment.reserve_journal(ENTRIES_PER_CALL * len(nodes) + 8)
        for node in nodes:
            self.deallocate(node)
        self.clear_header(w)

    def _verify(self, w: Words, claim: Claim) -> None:
        least = self.least_node()
        length = self._checked_count(w[(self.segment_handle >> 3) + L_LENGTH], least)
        nodes = self._ring(w, length)
        self._check_back_links(w, nodes)
        known = self.element is not None
        start: cython.Py_ssize_t
        size: cython.Py_ssize_t
        for node in nodes:
            self.check_node(w, node, -1)
            start, size = node + least, 0
            if known:
                start, size = self.value_span(w, node)
            claim(node, start - node + size)

    def appendleft(self, value: Any) -> None:
        """Add ``value`` at the front (Boost's ``push_front``); ``BadAlloc`` changes nothing."""
        self.insert(0, value)


class SegmentList(_ListCore, Generic[T]):
    """A doubly linked list in the segment, with Python's list protocol.

    ``insert``/``pop``/``del`` at either end are O(1); indexing walks from the nearer end.
    """

    __slots__ = ()
    _HEADER_SIZE = LIST_HEADER_SIZE
    _VARIABLE_ELEMENTS = True

    @classmethod
    def __class_getitem__(cls, element: object) -> type:
        """``SegmentList[c_int]``: the concrete class for that element type."""
        return cls._specialised(element)


register_segment_type(SegmentList, family=SegmentList.__name__)
