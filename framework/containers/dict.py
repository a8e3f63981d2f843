"""``SegmentDict``: a chained hash table in the segment whose nodes also keep insertion
order, as Python's dict. Keys are hashed with CRC-32 of their stored bytes, which every
process agrees on (Python's own ``hash`` is salted per process).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from segalloc.containers.codecs import _Codec
from segalloc.containers.elements import _codec_for, _spelled
from segalloc.containers.proxy import (
    _UNCHECKED_BYTES,
    WORD,
    Words,
    _Proxy,
    _specialise,
)
from segalloc.deep_check import Claim, register_segment_type
from segalloc.errors import BadAlloc
from segalloc.journal import ENTRIES_PER_CALL
from segalloc.walks import LinkWalk

K = TypeVar("K")
V = TypeVar("V")
#: tunable: first bucket count of a dict (a power of two); the table doubles at load factor 1
_MIN_BUCKETS = 8


def _round_up(n: int) -> int:
    return (n + WORD - 1) & -WORD


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


def _key_tag(raw_key: bytes) -> int:
    return zlib.crc32(raw_key) | len(raw_key) << 32


class SegmentDict(_Proxy, Generic[K, V]):
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

    # -- layout helpers (under the lock) ------------------------------------------------------
    def _initialise(self, *initial: Any) -> None:
        w = self._words()
        h = self.segment_handle
        hw = h >> 3
        w[hw + D_NEXT] = w[hw + D_PREV] = h
        w[hw + D_LENGTH] = w[hw + D_BUCKETS] = w[hw + D_COUNT] = 0
        if initial:
            self.update(initial[0])

    def _length(self, w: Words) -> int:
        """The stored item count, checked against the allocated bytes (a node per item)."""
        return self._checked_count(int(w[(self.segment_handle >> 3) + D_LENGTH]), NODE_KEY)

    def _nodes(self, w: Words) -> list[int]:
        return self._ring(w, self._length(w))

    def _table(self, w: Words) -> tuple[int, int]:
        """``(bucket array, bucket count)``; refused unless the count is a power of two (a
        mask of any other count would send keys to buckets they were never filed in) and the
        array lies in the segment."""
        hw = self.segment_handle >> 3
        table, count = int(w[hw + D_BUCKETS]), int(w[hw + D_COUNT])
        if count & (count - 1) or bool(table) != bool(count) or table & (WORD - 1):
            raise self._corrupt(f"bucket table {table} of {count} buckets is impossible "
                                "(the count must be a power of two)")
        if table + count * WORD > len(self._buf):
            raise self._corrupt(f"bucket table {table} of {count} buckets is outside the segment")
        self._checked_count(count, WORD, "bucket count")
        return table, count

    def _bucket_word(self, w: Words, tag: int) -> int:
        """The word index of the bucket head for a key tag (the table must exist)."""
        table, count = self._table(w)
        return (table >> 3) + (tag & 0xFFFFFFFF & (count - 1))

    def _find(self, w: Words, raw_key: bytes, tag: int) -> tuple[int, int]:
        """``(node, word that links to it)`` for ``raw_key``; node 0 when absent."""
        table, count = self._table(w)
        if not count:
            return 0, 0
        link = (table >> 3) + (tag & 0xFFFFFFFF & (count - 1))
        walk = LinkWalk(self._length(w), f"{type(self).__name__} at {self.segment_handle}: "
                                         "a bucket chain", "its stored length")
        buf, klen = self._buf, len(raw_key)
        try:
            while True:
                node = int(w[link])
                if not node:
                    return 0, 0
                if node & (WORD - 1):
                    raise self._corrupt(f"bad chain link {node}")
                walk.step(node)
                if w[(node >> 3) + N_KEYTAG] == tag and buf[node + NODE_KEY : node + NODE_KEY
                                                            + klen] == raw_key:
                    return node, link
                link = (node >> 3) + N_CHAIN
        except IndexError:
            raise self._corrupt("a chain link points outside the segment") from None

    def _lengths(self, w: Words, node: int) -> tuple[int, int]:
        """``(key bytes, value bytes)`` of an item; lengths beyond what is read unchecked
        must fit in the item's block before anything is copied by them."""
        klen = int(w[(node >> 3) + N_KEYTAG]) >> 32
        vlen = int(w[(node >> 3) + N_VLEN])
        if klen + vlen > _UNCHECKED_BYTES:
            needed = NODE_KEY + _round_up(klen) + vlen
            if self.segment.algorithm.usable_size(node) < needed:
                raise self._corrupt(f"item {node} claims {klen} + {vlen} bytes, more than its "
                                    "block holds")
        return klen, vlen

    def _value_at(self, w: Words, node: int) -> Any:
        klen, vlen = self._lengths(w, node)
        return self._decoded(self._value, node + NODE_KEY + _round_up(klen), vlen)

    def _key_at(self, w: Words, node: int) -> Any:
        klen = self._lengths(w, node)[0]
        return self._decoded(self._key, node + NODE_KEY, klen)

    def _decoded(self, codec: _Codec, at: int, length: int) -> Any:
        """A stored key or value, refused when damaged lengths put it past the segment's end
        or its text is not UTF-8."""
        if at + (codec.size or length) > len(self._buf):
            raise self._corrupt(f"a key or value at {at} runs past the segment's end")
        try:
            return codec.decode(self._buf, at, length)
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"a stored text is not UTF-8: {exc}") from None

    def _lookup(self, key: Any) -> tuple[bytes, int] | None:
        """``(raw_key, tag)``, or None for a key this dict cannot hold (so it is absent)."""
        try:
            raw = self._key.encode(key)
        except (TypeError, OverflowError):
            return None
        return raw, _key_tag(raw)

    def _fill_node(self, w: Words, node: int, raw_key: bytes, tag: int, raw: bytes) -> None:
        nw = node >> 3
        w[nw + N_KEYTAG] = tag
        w[nw + N_VLEN] = len(raw)
        value = node + NODE_KEY + _round_up(len(raw_key))
        self.segment.write(node + NODE_KEY, raw_key)
        self.segment.write(value, raw)

    def _rehash(self, w: Words, count: int) -> bool:
        """Move every node into a new table of ``count`` buckets; False (nothing changed)
        when there is no room for it."""
        self.segment.reserve_journal(2 * count + 2 * int(w[(self.segment_handle >> 3) + D_LENGTH])
                                     + 2 * ENTRIES_PER_CALL)
        table = self.segment.algorithm.allocate(count * WORD)
        if table is None:
            return False
        hw = self.segment_handle >> 3
        old = int(w[hw + D_BUCKETS])
        self.segment.write(table, bytes(count * WORD))
        w[hw + D_BUCKETS], w[hw + D_COUNT] = table, count
        for node in self._nodes(w):
            head = self._bucket_word(w, int(w[(node >> 3) + N_KEYTAG]))
            w[(node >> 3) + N_CHAIN] = w[head]
            w[head] = node
        if old:
            self.segment.algorithm.deallocate(old)
        return True

    def _assign(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Set every (key, value), all or nothing: nodes (and the first table) are allocated
        before anything changes."""
        final: dict[bytes, bytes] = {}
        for key, value in pairs:
            final[self._key.encode(key)] = self._value.encode(value)
        with self._changing():
            w = self._words()
            hw = self.segment_handle >> 3
            plan = []
            for raw_key, raw in final.items():
                tag = _key_tag(raw_key)
                node, link = self._find(w, raw_key, tag)
                in_place = node and w[(node >> 3) + N_VLEN] == len(raw)
                plan.append((raw_key, tag, raw, node, link, in_place))
            sizes = [NODE_KEY + _round_up(len(k)) + len(v) for k, _, v, _, _, same in plan
                     if not same]
            fresh = self._allocate_all(sizes)
            if fresh and not w[hw + D_COUNT] and not self._rehash(w, _MIN_BUCKETS):
                self.segment.reserve_journal(ENTRIES_PER_CALL * len(fresh))
                self.segment.algorithm.deallocate_many(fresh)
                raise BadAlloc(f"no room for the {type(self).__name__} bucket table")
            spare = iter(fresh)
            for raw_key, tag, raw, node, _, in_place in plan:
                if in_place:
                    self._fill_node(w, node, raw_key, tag, raw)
                    continue
                new = next(spare)
                self._fill_node(w, new, raw_key, tag, raw)
                node, link = self._find(w, raw_key, tag)
                if node:
                    self._replace_node(w, node, link, new)
                else:
                    self._add_node(w, new, tag)

    def _add_node(self, w: Words, node: int, tag: int) -> None:
        h = self.segment_handle
        hw, nw = h >> 3, node >> 3
        count = int(w[hw + D_COUNT])
        if w[hw + D_LENGTH] >= count:
            self._rehash(w, count * 2)  # no room: the chains just get longer
        head = self._bucket_word(w, tag)
        w[nw + N_CHAIN] = w[head]
        w[head] = node
        last = int(w[hw + D_PREV])
        w[nw + D_NEXT], w[nw + D_PREV] = h, last
        w[(last >> 3) + D_NEXT] = node
        w[hw + D_PREV] = node
        w[hw + D_LENGTH] += 1

    def _replace_node(self, w: Words, old: int, link: int, new: int) -> None:
        ow, nw = old >> 3, new >> 3
        after, before = int(w[ow + D_NEXT]), int(w[ow + D_PREV])
        w[nw + D_NEXT], w[nw + D_PREV], w[nw + N_CHAIN] = after, before, w[ow + N_CHAIN]
        w[(before >> 3) + D_NEXT] = new
        w[(after >> 3) + D_PREV] = new
        w[link] = new
        self.segment.algorithm.deallocate(old)

    def _remove_node(self, w: Words, node: int, link: int) -> None:
        nw = node >> 3
        w[link] = w[nw + N_CHAIN]
        after, before = int(w[nw + D_NEXT]), int(w[nw + D_PREV])
        w[(before >> 3) + D_NEXT] = after
        w[(after >> 3) + D_PREV] = before
        w[(self.segment_handle >> 3) + D_LENGTH] -= 1
        self.segment.algorithm.deallocate(node)

    def _release_all(self) -> None:
        w = self._words()
        hw = self.segment_handle >> 3
        deallocate = self.segment.algorithm.deallocate
        nodes = self._nodes(w)
        self.segment.reserve_journal(ENTRIES_PER_CALL * (len(nodes) + 1) + 8)
        for node in nodes:
            deallocate(node)
        if w[hw + D_BUCKETS]:
            deallocate(w[hw + D_BUCKETS])
        self._initialise()

    def _snapshot(self) -> dict[Any, Any]:
        w = self._words()
        return {self._key_at(w, node): self._value_at(w, node) for node in self._nodes(w)}

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
            if zlib.crc32(buf[node + NODE_KEY : node + NODE_KEY + klen]) != tag & 0xFFFFFFFF:
                raise self._corrupt(f"item {node} has a damaged key hash")
            if hasattr(self, "_key"):
                for codec, length in ((self._key, klen), (self._value, vlen)):
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

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._reading():
            return self._length(self._words())

    def __getitem__(self, key: Any) -> Any:
        found = self._lookup(key)
        with self._reading():
            w = self._words()
            node = self._find(w, *found)[0] if found else 0
            if not node:
                raise KeyError(key)
            return self._value_at(w, node)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        found = self._lookup(key)
        if found is None:
            return False
        with self._reading():
            return self._find(self._words(), *found)[0] != 0

    def copy(self) -> dict[Any, Any]:
        """A Python dict with the same items, in insertion order."""
        with self._reading():
            return self._snapshot()

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
        if isinstance(other, SegmentDict):
            return self.copy() == other.copy()
        if isinstance(other, Mapping):
            return self.copy() == dict(other)
        return NotImplemented

    # -- changing --------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self._assign([(key, value)])

    def update(self, other: Any = (), **kwargs: Any) -> None:
        """Set every item of ``other`` (a mapping or pairs) and ``kwargs``, all or nothing."""
        pairs = list(other.items() if isinstance(other, Mapping) else other)
        self._assign(pairs + list(kwargs.items()))

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
        found = self._lookup(key)
        with self._changing():
            w = self._words()
            node, link = self._find(w, *found) if found else (0, 0)
            if not node:
                raise KeyError(key)
            value = self._value_at(w, node)
            self._remove_node(w, node, link)
            return value

    _MISSING: ClassVar[object] = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default`` or ``KeyError`` when absent)."""
        try:
            return self._pop(key)
        except KeyError:
            if default is SegmentDict._MISSING:
                raise
            return default

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last inserted (key, value), as ``dict.popitem``."""
        with self._changing():
            w = self._words()
            if not w[(self.segment_handle >> 3) + D_LENGTH]:
                raise KeyError("popitem(): dictionary is empty")
            last = int(w[(self.segment_handle >> 3) + D_PREV])
            tag = int(w[(last >> 3) + N_KEYTAG])
            raw_key = bytes(self._buf[last + NODE_KEY : last + NODE_KEY + self._lengths(w, last)[0]])
            node, link = self._find(w, raw_key, tag)
            if node != last:
                raise self._corrupt(f"the last item {last} is not in its bucket chain")
            item = self._key_at(w, last), self._value_at(w, last)
            self._remove_node(w, last, link)
            return item

    def clear(self) -> None:
        """Remove every item and free the nodes and the table."""
        with self._changing():
            self._release_all()


register_segment_type(SegmentDict, family=SegmentDict.__name__)
