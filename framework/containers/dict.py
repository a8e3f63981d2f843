"""``SegmentDict``: a chained hash table in the segment whose nodes also keep insertion
order, as Python's dict. Keys are hashed with CRC-32 of their stored bytes, which every
process agrees on (Python's own ``hash`` is salted per process).

Compiled (Cython's pure-Python mode, ``dict.pxd``): ``_DictCore`` holds all the logic, its
layout helpers C methods over the typed word view, so a get or an insert runs in C from the
key's bytes to the value; ``SegmentDict`` adds the generic class and its element types.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar
from zlib import crc32

import cython

from segalloc.containers.codecs import _Codec
from segalloc.containers.elements import _codec_for, _spelled
from segalloc.containers.proxy import (
    _UNCHECKED_BYTES,
    WORD,
    _caller_error,
    _Proxy,
    _specialise,
)
from segalloc.deep_check import Claim, register_segment_type
from segalloc.errors import BadAlloc
from segalloc.journal import ENTRIES_PER_CALL
from segalloc.kernel import NO_MEMORY
from segalloc.walks import LinkWalk
from segalloc.words import Words

if not cython.compiled:  # compiled, the C forms come from intrinsics.pxd and dict.pxd (zlib's)
    from zlib import crc32 as key_crc

    from segalloc.intrinsics import same_bytes

#: the dict's read-only questions (``_Proxy.read``), and a missing key's answer
_GET = cython.declare(cython.int, 1)
_CONTAINS = cython.declare(cython.int, 2)
_COPY = cython.declare(cython.int, 3)
_MISSING = object()

K = TypeVar("K")
V = TypeVar("V")
#: tunable: first bucket count of a dict (a power of two); the table doubles at load factor 1
_MIN_BUCKETS = 8


# ------------------------------------------------------------------------------------------
# SegmentDict: a chained hash table whose nodes also keep insertion order (as Python's dict)
#
#  Dict header, in the constructed object's block at H; it is the sentinel of the circular
#  insertion-order list:
#
#   H+0   +------------------------------------------+
#         | NEXT     first node in insertion order/H |  word D_NEXT
#   H+8   +------------------------------------------+
#         | PREV     last node in insertion order/H  |  word D_PREV
#   H+16  +------------------------------------------+
#         | LENGTH   number of items                 |  word D_LENGTH
#   H+24  +------------------------------------------+
#         | BUCKETS  offset of the bucket array / 0  |  word D_BUCKETS
#   H+32  +------------------------------------------+
#         | COUNT    buckets (a power of two) / 0    |  word D_COUNT
#   H+40  +------------------------------------------+
#
#  Bucket array: COUNT words, each the offset of the first node of its chain (0: empty).
#
#  Node (one block each, at N):
#
#   N+0   NEXT   insertion order                      word D_NEXT
#   N+8   PREV   insertion order                      word D_PREV
#   N+16  CHAIN  next node in the same bucket (0)     word N_CHAIN
#   N+24  KEYTAG CRC-32 of the key (low 32 bits) | key bytes << 32    word N_KEYTAG
#   N+32  VLEN   value bytes                          word N_VLEN
#   N+40  key bytes, then the value at N+40+round8(key bytes)
# ------------------------------------------------------------------------------------------

D_NEXT = 0
D_PREV = 1
D_LENGTH = 2
D_BUCKETS = 3
D_COUNT = 4
DICT_HEADER_SIZE = 5 * WORD
N_CHAIN = 2
N_KEYTAG = 3
N_VLEN = 4
NODE_KEY = 5 * WORD
#: the low 32 bits of a key tag: the key's CRC-32
HASH_MASK = 0xFFFFFFFF
#: journal entries one insert may log besides its allocator calls (node words, key and value
#: words of a short key, links, header; a longer key reserves its words on top)
_INSERT_ENTRIES = 16
#: stored counts of up to this many items are used without asking the allocator
_UNCHECKED_ITEMS = _UNCHECKED_BYTES // NODE_KEY
# the imported constants as C values
_WORD = cython.declare(cython.Py_ssize_t, WORD)
_UNCHECKED = cython.declare(cython.Py_ssize_t, _UNCHECKED_BYTES)
_PER_CALL = cython.declare(cython.Py_ssize_t, ENTRIES_PER_CALL)
_NO_MEMORY = cython.declare(cython.Py_ssize_t, NO_MEMORY)
#: the ints a word value holds, and its 64 bits
_WORD_MIN = -(1 << 63)
_WORD_END = 1 << 63
_WORD_BITS = (1 << 64) - 1
#: ``pop``'s default: no default given
_MISSING = object()


def _round_up(n: cython.Py_ssize_t) -> cython.Py_ssize_t:
    return (n + _WORD - 1) & -_WORD


def key_tag(raw_key: bytes) -> cython.Py_ssize_t:
    """What a node keeps of its key besides the bytes: the CRC-32 and the length."""
    if len(raw_key) > HASH_MASK >> 1:
        raise _caller_error(ValueError(f"a key of {len(raw_key)} bytes is too long"))
    return key_crc(raw_key) | len(raw_key) << 32


@cython.cclass
class _DictCore(_Proxy):
    """The dict's logic over the segment's words (``SegmentDict`` is the public class).

    Every operation is one segment operation (``enter`` / ``leave``, or ``failed``, which rolls
    back); inside it the helpers read through the signed word view, write through
    ``Words.store`` / ``Words.store_bytes``, and check every stored word before it sizes a walk
    or indexes anything.
    """

    if TYPE_CHECKING:  # the C fields (dict.pxd), as type checkers see them
        key_codec: Any  # a _Codec (None only on an unspecialised generic, never used)
        value_codec: Any
        word_values: bool

    def __init__(self, segment: Any, handle: int) -> None:
        _Proxy.__init__(self, segment, handle)
        # the element types' codecs, from the class (the unspecialised generic has none)
        self.key_codec = getattr(type(self), "_key", None)
        self.value_codec = getattr(type(self), "_value", None)
        self.word_values = self.value_codec is not None and self.value_codec.word

    # -- layout helpers (inside a segment operation) ----------------------------------------
    def _initialise(self, *initial: Any) -> None:
        w: Words = self.current_words()
        h: cython.Py_ssize_t = self.segment_handle
        hw: cython.Py_ssize_t = h >> 3
        w.put(hw + D_NEXT, h)
        w.put(hw + D_PREV, h)
        w.put(hw + D_LENGTH, 0)
        w.put(hw + D_BUCKETS, 0)
        w.put(hw + D_COUNT, 0)
        if initial:
            self.update(initial[0])

    def length(self, w: Words) -> cython.Py_ssize_t:
        """The stored item count, checked against the allocated bytes (a node per item)."""
        count: cython.Py_ssize_t = w.signed[(self.segment_handle >> 3) + D_LENGTH]
        if 0 <= count <= _UNCHECKED_ITEMS:
            return count
        return self._checked_count(w[(self.segment_handle >> 3) + D_LENGTH], NODE_KEY)

    def _length(self, w: Words) -> int:
        return self.length(w)

    def _nodes(self, w: Words) -> list[int]:
        return self._ring(w, self.length(w))

    def bucket_count(self, w: Words) -> cython.Py_ssize_t:
        """The bucket count (0: no table yet), refused unless a power of two (a mask of any
        other count would send keys to buckets they were never filed in) whose array lies in
        the segment."""
        hw: cython.Py_ssize_t = self.segment_handle >> 3
        table: cython.Py_ssize_t = w.signed[hw + D_BUCKETS]
        count: cython.Py_ssize_t = w.signed[hw + D_COUNT]
        if (count < 0 or table < 0 or count & (count - 1) or (table == 0) != (count == 0)
                or table & (_WORD - 1)):
            raise self._corrupt(f"bucket table {w[hw + D_BUCKETS]} of {w[hw + D_COUNT]} buckets "
                                "is impossible (the count must be a power of two)")
        if count > (len(w.octets) - table) // _WORD:
            raise self._corrupt(f"bucket table {table} of {count} buckets is outside the segment")
        if count > _UNCHECKED // _WORD:
            self._checked_count(count, _WORD, "bucket count")
        return count

    def _table(self, w: Words) -> tuple[int, int]:
        """``(bucket array, bucket count)``, checked (``bucket_count``)."""
        count = self.bucket_count(w)
        return int(w[(self.segment_handle >> 3) + D_BUCKETS]), count

    def bucket_word(self, w: Words, tag: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The word index of the bucket head for a key tag; -1 when there is no table."""
        count: cython.Py_ssize_t = self.bucket_count(w)
        if not count:
            return -1
        table: cython.Py_ssize_t = w.signed[(self.segment_handle >> 3) + D_BUCKETS]
        return (table >> 3) + (tag & HASH_MASK & (count - 1))

    def find_link(self, w: Words, raw_key: bytes, tag: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The word that links to the node of ``raw_key`` (the bucket head or the CHAIN word
        of the node before it; the node is the word's value); -1 when the key is absent. The
        walk is bounded by the stored length (a cycle exhausts it)."""
        link: cython.Py_ssize_t = self.bucket_word(w, tag)
        if link < 0:
            return -1
        r: cython.const[cython.longlong][::1] = w.signed
        last: cython.Py_ssize_t = len(w.octets) - NODE_KEY
        budget: cython.Py_ssize_t = self.length(w)
        node: cython.Py_ssize_t = r[link]
        while node:
            if node & (_WORD - 1) or node < 0 or node > last:
                raise self._corrupt(f"bad chain link {w[link]}")
            if budget == 0:
                raise self._corrupt("a bucket chain is longer than its stored length "
                                    f"({self.length(w)}) or runs in a cycle")
            budget -= 1
            if r[(node >> 3) + N_KEYTAG] == tag and same_bytes(w.octets, node + NODE_KEY,
                                                                 raw_key):
                return link
            link = (node >> 3) + N_CHAIN
            node = r[link]
        return -1

    def value_offset(self, w: Words, node: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The byte offset of an item's value; lengths beyond what is read unchecked must fit
        in the item's block before anything is copied by them."""
        tag: cython.Py_ssize_t = w.signed[(node >> 3) + N_KEYTAG]
        vlen: cython.Py_ssize_t = w.signed[(node >> 3) + N_VLEN]
        klen: cython.Py_ssize_t = tag >> 32
        if tag < 0 or vlen < 0 or vlen > _UNCHECKED - klen:
            if tag < 0 or vlen < 0 or (self.segment.algorithm.usable_size(node)
                                       - NODE_KEY - _round_up(klen)) < vlen:
                raise self._corrupt(f"item {node} claims {w[(node >> 3) + N_KEYTAG] >> 32} + "
                                    f"{w[(node >> 3) + N_VLEN]} bytes, more than its block "
                                    "holds")
        return node + NODE_KEY + _round_up(klen)

    def _lengths(self, w: Words, node: int) -> tuple[int, int]:
        """``(key bytes, value bytes)`` of an item, checked (``value_offset``)."""
        self.value_offset(w, node)
        return int(w[(node >> 3) + N_KEYTAG]) >> 32, int(w[(node >> 3) + N_VLEN])

    def value_at(self, w: Words, node: cython.Py_ssize_t) -> object:
        at: cython.Py_ssize_t = self.value_offset(w, node)
        if self.word_values:
            if at > len(w.octets) - _WORD:
                raise self._corrupt(f"a key or value at {at} runs past the segment's end")
            return w.signed[at >> 3]
        return self._decoded(self.value_codec, at, w.signed[(node >> 3) + N_VLEN])

    def _value_at(self, w: Words, node: int) -> Any:
        return self.value_at(w, node)

    def _key_at(self, w: Words, node: int) -> Any:
        self.value_offset(w, node)
        return self._decoded(self.key_codec, node + NODE_KEY, w.signed[(node >> 3) + N_KEYTAG] >> 32)

    def _decoded(self, codec: Any, at: cython.Py_ssize_t, length: cython.Py_ssize_t) -> Any:
        """A stored key or value, refused when damaged lengths put it past the segment's end
        or its text is not UTF-8."""
        if at + (codec.size or length) > len(self._buf):
            raise self._corrupt(f"a key or value at {at} runs past the segment's end")
        try:
            return codec.decode(self._buf, at, length)
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"a stored text is not UTF-8: {exc}") from None

    def raw_key(self, key: object) -> Any:
        """The stored bytes of ``key``, or None for a key this dict cannot hold (so it is
        absent)."""
        try:
            return self.key_codec.encode(key)
        except (TypeError, OverflowError):
            return None

    def store_value(self, w: Words, at: cython.Py_ssize_t, value: Any,
                    raw: Any) -> cython.int:
        """Write a value at byte ``at``: its ``raw`` bytes, or (``raw`` None) the int itself
        as the word it is stored as."""
        if raw is not None:
            w.store_bytes(at, raw)
            return 0
        word: cython.longlong = value
        if word >= 0:
            w.put(at >> 3, word)
        else:
            w[at >> 3] = value & _WORD_BITS
        return 0

    def encoded_value(self, value: object) -> Any:
        """The bytes to store for ``value``; None for an int the word path stores as it is
        (``TypeError`` / ``OverflowError`` for a value the dict cannot hold)."""
        if self.word_values and type(value) is int and _WORD_MIN <= value < _WORD_END:
            return None
        return self.value_codec.encode(value)

    def rehash(self, w: Words, count: cython.Py_ssize_t) -> cython.bint:
        """Move every node into a new table of ``count`` buckets; False (nothing changed)
        when there is no room for it."""
        hw: cython.Py_ssize_t = self.segment_handle >> 3
        length: cython.Py_ssize_t = self.length(w)
        self.segment.reserve_journal(2 * count + 2 * length + 2 * _PER_CALL)
        table: cython.Py_ssize_t = self.allocate(count * _WORD)
        if table == _NO_MEMORY:
            return False
        old: cython.Py_ssize_t = w.signed[hw + D_BUCKETS]
        bucket: cython.Py_ssize_t
        for bucket in range(table >> 3, (table >> 3) + count):
            w.put(bucket, 0)
        w.put(hw + D_BUCKETS, table)
        w.put(hw + D_COUNT, count)
        r: cython.const[cython.longlong][::1] = w.signed
        h: cython.Py_ssize_t = self.segment_handle
        node: cython.Py_ssize_t = r[hw + D_NEXT]
        head: cython.Py_ssize_t
        for _ in range(length):
            self.check_ring_node(w, node)
            head = (table >> 3) + (r[(node >> 3) + N_KEYTAG] & HASH_MASK & (count - 1))
            w.put((node >> 3) + N_CHAIN, r[head])
            w.put(head, node)
            node = r[node >> 3]
        if node != h:
            raise self._corrupt(f"the chain does not close after {length} items")
        if old:
            self.deallocate(old)
        return True

    def check_ring_node(self, w: Words, node: cython.Py_ssize_t) -> cython.int:
        """Refuse a link of the insertion order that is not an item's node."""
        if node == self.segment_handle or node & (_WORD - 1) or node < 0 \
                or node > len(w.octets) - NODE_KEY:
            raise self._corrupt(f"bad link {node} in the insertion order")
        return 0

    def set_item(self, w: Words, raw_key: bytes, value: object, raw: Any) -> cython.int:
        """Set one item (inside a changing operation); ``BadAlloc`` when there is no room."""
        klen: cython.Py_ssize_t = len(raw_key)
        vlen: cython.Py_ssize_t = _WORD if raw is None else len(raw)
        tag: cython.Py_ssize_t = key_tag(raw_key)
        self.journal_room(w, 2 * _PER_CALL + _INSERT_ENTRIES + (klen + vlen) // _WORD)
        link: cython.Py_ssize_t = self.find_link(w, raw_key, tag)
        r: cython.const[cython.longlong][::1] = w.signed
        old: cython.Py_ssize_t = r[link] if link >= 0 else 0
        if old and r[(old >> 3) + N_VLEN] == vlen:  # the same length: written in place
            self.store_value(w, self.value_offset(w, old), value, raw)
            return 0
        node: cython.Py_ssize_t = self.allocate(NODE_KEY + _round_up(klen) + vlen)
        if node == _NO_MEMORY:
            raise BadAlloc(f"no room for a {type(self).__name__} item")
        w.put((node >> 3) + N_KEYTAG, tag)
        w.put((node >> 3) + N_VLEN, vlen)
        w.store_bytes(node + NODE_KEY, raw_key)
        self.store_value(w, node + NODE_KEY + _round_up(klen), value, raw)
        if old:
            self.replace_node(w, old, link, node)
        else:
            self.add_node(w, node, tag)
        return 0

    def add_node(self, w: Words, node: cython.Py_ssize_t, tag: cython.Py_ssize_t) -> cython.int:
        h: cython.Py_ssize_t = self.segment_handle
        hw: cython.Py_ssize_t = h >> 3
        nw: cython.Py_ssize_t = node >> 3
        count: cython.Py_ssize_t = self.bucket_count(w)
        if not count:
            if not self.rehash(w, _MIN_BUCKETS):
                raise BadAlloc(f"no room for the {type(self).__name__} bucket table")
        elif self.length(w) >= count:
            self.rehash(w, count * 2)  # no room: the chains just get longer
        head: cython.Py_ssize_t = self.bucket_word(w, tag)
        r: cython.const[cython.longlong][::1] = w.signed
        w.put(nw + N_CHAIN, r[head])
        w.put(head, node)
        last: cython.Py_ssize_t = r[hw + D_PREV]
        if last != h:
            self.check_ring_node(w, last)
        w.put(nw + D_NEXT, h)
        w.put(nw + D_PREV, last)
        w.put((last >> 3) + D_NEXT, node)
        w.put(hw + D_PREV, node)
        w.put(hw + D_LENGTH, self.length(w) + 1)
        return 0

    def ring_neighbours(self, w: Words, node: cython.Py_ssize_t) -> tuple[cython.Py_ssize_t,
                                                                            cython.Py_ssize_t]:
        """``(after, before)``: the item's neighbours in insertion order, checked."""
        after: cython.Py_ssize_t = w.signed[(node >> 3) + D_NEXT]
        before: cython.Py_ssize_t = w.signed[(node >> 3) + D_PREV]
        if after != self.segment_handle:
            self.check_ring_node(w, after)
        if before != self.segment_handle:
            self.check_ring_node(w, before)
        return after, before

    def replace_node(self, w: Words, old: cython.Py_ssize_t, link: cython.Py_ssize_t,
                     new: cython.Py_ssize_t) -> cython.int:
        ow: cython.Py_ssize_t = old >> 3
        nw: cython.Py_ssize_t = new >> 3
        after: cython.Py_ssize_t
        before: cython.Py_ssize_t
        after, before = self.ring_neighbours(w, old)
        w.put(nw + D_NEXT, after)
        w.put(nw + D_PREV, before)
        w.put(nw + N_CHAIN, w.signed[ow + N_CHAIN])
        w.put((before >> 3) + D_NEXT, new)
        w.put((after >> 3) + D_PREV, new)
        w.put(link, new)
        self.deallocate(old)
        return 0

    def remove_node(self, w: Words, link: cython.Py_ssize_t) -> cython.int:
        node: cython.Py_ssize_t = w.signed[link]
        nw: cython.Py_ssize_t = node >> 3
        after: cython.Py_ssize_t
        before: cython.Py_ssize_t
        after, before = self.ring_neighbours(w, node)
        w.put(link, w.signed[nw + N_CHAIN])
        w.put((before >> 3) + D_NEXT, after)
        w.put((after >> 3) + D_PREV, before)
        w.put((self.segment_handle >> 3) + D_LENGTH, self.length(w) - 1)
        self.deallocate(node)
        return 0

    def _release_all(self) -> None:
        w = self._words()
        deallocate = self.segment.algorithm.deallocate
        nodes = self._nodes(w)
        table, count = self._table(w)  # checked before anything is freed
        self.segment.reserve_journal(ENTRIES_PER_CALL * (len(nodes) + 1) + 8)
        for node in nodes:
            deallocate(node)
        if count:
            deallocate(table)
        self._initialise()

    def _snapshot(self) -> dict[Any, Any]:
        w: Words = self.current_words()
        items: dict[Any, Any] = {}
        length: cython.Py_ssize_t = self.length(w)
        node: cython.Py_ssize_t = w.signed[self.segment_handle >> 3]
        for _ in range(length):
            self.check_ring_node(w, node)
            items[self._key_at(w, node)] = self.value_at(w, node)
            node = w.signed[node >> 3]
        if node != self.segment_handle:
            raise self._corrupt(f"the chain does not close after {length} items")
        return items

    def _verify(self, w: Words, claim: Claim) -> None:
        nodes = self._nodes(w)
        self._check_back_links(w, nodes)
        table, count = self._table(w)
        if nodes and not count:
            raise self._corrupt(f"{len(nodes)} items but no bucket table")
        if count:
            claim(table, count * WORD)
        buf = self._buf
        for node in nodes:
            tag, vlen = int(w[(node >> 3) + N_KEYTAG]), int(w[(node >> 3) + N_VLEN])
            klen = tag >> 32
            claim(node, NODE_KEY + _round_up(klen) + vlen)
            if crc32(buf[node + NODE_KEY : node + NODE_KEY + klen]) != tag & HASH_MASK:
                raise self._corrupt(f"item {node} has a damaged key hash")
            if self.key_codec is not None:
                for codec, length in ((self.key_codec, klen), (self.value_codec, vlen)):
                    if codec.size is not None and codec.size != length:
                        raise self._corrupt(f"item {node} stores {length} bytes for a "
                                            f"{codec.label} of {codec.size}")
                self._key_at(w, node)
                self._value_at(w, node)
        self._check_chains(w, table, count, nodes)

    def _check_chains(self, w: Words, table: int, count: int, nodes: list[int]) -> None:
        """Every item sits in the chain of the bucket its key hash names, once, and the
        chains hold nothing else."""
        unfiled = set(nodes)
        walk = LinkWalk(len(nodes), f"{type(self).__name__} at {self.segment_handle}: "
                                    "the bucket chains", "its items")
        for bucket in range(count):
            node = int(w[(table >> 3) + bucket])
            while node:
                walk.step(node)
                if node not in unfiled:
                    raise self._corrupt(f"bucket {bucket} holds {node}, not an item (or twice)")
                if int(w[(node >> 3) + N_KEYTAG]) & (count - 1) != bucket:
                    raise self._corrupt(f"item {node} is in bucket {bucket}, its hash names "
                                        "another")
                unfiled.discard(node)
                node = int(w[(node >> 3) + N_CHAIN])
        if unfiled:
            raise self._corrupt(f"item {min(unfiled)} is in no bucket chain")

    # -- reading (``_Proxy.read``: without the lock while no writer comes between) ----------
    def answer(self, question: cython.int, w: Words, raw: Any, tag: cython.Py_ssize_t) -> Any:
        """``_GET``: the value of the key ``raw`` (its ``tag``), or ``_MISSING``;
        ``_CONTAINS``: whether it is there; ``_COPY``: every item."""
        if question == _COPY:
            return self._snapshot()
        if question != _GET and question != _CONTAINS:
            return _Proxy.answer(self, question, w, raw, tag)
        link: cython.Py_ssize_t = self.find_link(w, raw, tag)
        if question == _CONTAINS:
            return link >= 0
        return _MISSING if link < 0 else self.value_at(w, w.signed[link])

    def __getitem__(self, key: Any) -> Any:
        raw = self.raw_key(key)
        if raw is None:
            raise KeyError(key)
        value = self.read(_GET, raw, key_tag(raw))
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        raw = self.raw_key(key)
        if raw is None:
            return False
        return self.read(_CONTAINS, raw, key_tag(raw))

    def copy(self) -> dict[Any, Any]:
        """A Python dict with the same items, in insertion order."""
        return self.read(_COPY, None, 0)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.copy())

    def keys(self) -> Any:
        """The keys, as a view of a snapshot."""
        return self.copy().keys()

    def values(self) -> Any:
        """The values, as a view of a snapshot."""
        return self.copy().values()

    def items(self) -> Any:
        """The (key, value) pairs, as a view of a snapshot."""
        return self.copy().items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _DictCore):
            return self.copy() == other.copy()
        if isinstance(other, Mapping):
            return self.copy() == dict(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    # -- changing --------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        raw_key = self.key_codec.encode(key)
        raw = self.encoded_value(value)
        lock = self.enter(True)
        try:
            self.set_item(self.current_words(), raw_key, value, raw)
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904
        self.leave(lock)

    def update(self, other: Any = (), **kwargs: Any) -> None:
        """Set every item of ``other`` (a mapping or pairs) and ``kwargs``, all or nothing."""
        pairs = list(other.items() if isinstance(other, Mapping) else other)
        pairs += kwargs.items()
        encoded = [(self.key_codec.encode(key), value, self.encoded_value(value))
                   for key, value in pairs]
        lock = self.enter(True)
        try:
            w: Words = self.current_words()
            for raw_key, value, raw in encoded:
                self.set_item(w, raw_key, value, raw)
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904
        self.leave(lock)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``; if absent, store ``default`` first."""
        with self._changing():
            if key in self:
                return self[key]
            self[key] = default
            return default

    def __delitem__(self, key: Any) -> None:
        self._pop(key)

    def _pop(self, key: Any) -> Any:
        raw = self.raw_key(key)
        lock = self.enter(True)
        try:
            w: Words = self.current_words()
            link: cython.Py_ssize_t = -1
            if raw is not None:
                link = self.find_link(w, raw, key_tag(raw))
            if link < 0:
                raise KeyError(key)
            value = self.value_at(w, w.signed[link])
            self.remove_node(w, link)
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904
        self.leave(lock)
        return value

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default`` or ``KeyError`` when absent)."""
        try:
            return self._pop(key)
        except KeyError:
            if default is _MISSING:
                raise
            return default

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last inserted (key, value), as ``dict.popitem``."""
        lock = self.enter(True)
        try:
            w: Words = self.current_words()
            if not self.length(w):
                raise KeyError("popitem(): dictionary is empty")
            last: cython.Py_ssize_t = w.signed[(self.segment_handle >> 3) + D_PREV]
            self.check_ring_node(w, last)
            self.value_offset(w, last)
            raw_key = bytes(self._buf[last + NODE_KEY : last + NODE_KEY
                                      + (w.signed[(last >> 3) + N_KEYTAG] >> 32)])
            link: cython.Py_ssize_t = self.find_link(w, raw_key, w.signed[(last >> 3) + N_KEYTAG])
            if link < 0 or w.signed[link] != last:
                raise self._corrupt(f"the last item {last} is not in its bucket chain")
            item = self._key_at(w, last), self.value_at(w, last)
            self.remove_node(w, link)
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904
        self.leave(lock)
        return item

    def clear(self) -> None:
        """Remove every item and free the nodes and the table."""
        with self._changing():
            self._release_all()


class SegmentDict(_DictCore, Generic[K, V]):
    """A mapping in the segment with Python's dict protocol, insertion order included.

    ``keys()``, ``values()`` and ``items()`` are views of a snapshot (a Python dict copy).
    """

    __slots__ = ()
    _HEADER_SIZE = DICT_HEADER_SIZE
    _key: ClassVar[_Codec]
    _value: ClassVar[_Codec]

    @classmethod
    def __class_getitem__(cls, types: object) -> type:
        """``SegmentDict[SegmentString, c_int]``: the concrete class for those types."""
        if not isinstance(types, tuple) or len(types) != 2:
            raise TypeError("SegmentDict needs a key and a value type: SegmentDict[K, V]")
        key, value = _spelled(types[0]), _spelled(types[1])
        return _specialise(cls, (key, value), {
            "key": _codec_for(key, variable=True),
            "value": _codec_for(value, variable=True),
        })

    @classmethod
    def _checked_initial(cls, initial: Any) -> list[tuple[Any, Any]]:
        pairs = list(initial.items() if isinstance(initial, Mapping) else initial)
        for key, value in pairs:
            cls._key.encode(key)
            cls._value.encode(value)
        return pairs


register_segment_type(SegmentDict, family=SegmentDict.__name__)
