"""The named-object index and the header every constructed object carries, both in the segment.

Object block (allocated from the segment's algorithm; ``E`` is the block's offset)::

    E+ 0  next       u64  next entry in the same hash bucket (0: end of chain)
    E+ 8  magic      u32  ENTRY_MAGIC
    E+12  kind       u8   1 named, 2 unique, 3 anonymous
    E+13  flags      u8   bit 0: constructed as an array (``count=`` given)
    E+14  (pad)      u16
    E+16  count      u64  number of elements
    E+24  elem_size  u64  bytes of one element
    E+32  name_len   u32  UTF-8 bytes of the name, stored after the data
    E+36  type_len   u32  bytes of the type identity, stored after the name
    E+40  hash       u32  CRC-32 of the kind byte and the name
    E+44  (pad)      u32
    E+48  data       count * elem_size bytes: the object itself (its handle is E+48)
          name, then type identity

Index root (four words in the segment header, at ``INDEX_ROOT_AT``; outside its checksum)::

    R+ 0  bucket_count   u64  a power of two; 0 until the first object is indexed
    R+ 8  buckets        u64  offset of a block of bucket_count u64 chain heads (0: none)
    R+16  named_count    u64
    R+24  unique_count   u64

A new segment spends nothing on the index; the bucket table is allocated with the first named
or unique object and doubled as objects are added.

Chains are hashed by (kind, name); every walk detects cycles and is bounded by the stored
object count (itself checked against the bytes the allocator has handed out), so a planted
cycle or a lying count raises ``SegmentCorrupt`` at once instead of walking the claimed size.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import cython

from segalloc.errors import InvalidPointer, SegmentCorrupt
from segalloc.header import INDEX_ROOT_AT
from segalloc.interfaces import MemoryAlgorithm
from segalloc.walks import LinkWalk
from segalloc.words import Words

if not cython.compiled:  # compiled, the C form comes from names.pxd (zlib's)
    from zlib import crc32 as name_crc

__all__ = ["ENTRY_SIZE", "Entry", "InstanceType", "NameIndex"]


class InstanceType(enum.IntEnum):
    """Boost's ``instance_type``: how an object was constructed."""

    NAMED = 1
    UNIQUE = 2
    ANONYMOUS = 3


#: each stored kind code's InstanceType (a lookup: calling the enum costs more than the rest
#: of decoding an entry)
_KINDS = {kind.value: kind for kind in InstanceType}


ENTRY_MAGIC = 0x4A424F53  # "SOBJ"
ENTRY_SIZE = 48
_ENTRY = struct.Struct("<QIBBHQQIII4x")
_ROOT = struct.Struct("<QQQQ")
_FLAG_ARRAY = 1
_INITIAL_BUCKETS = 8
#: tunable: a name and type identity this long are copied without asking the allocator; a
#: longer one must fit in the entry's block first (a lying length must not cost a copy of
#: the claimed segment)
_UNCHECKED_NAME_BYTES = 1 << 16
#: tunable: an index whose table and stored counts take at most this many bytes is used
#: without asking the allocator (every lookup reads the root); its walks stay bounded by them
_UNCHECKED_INDEX_BYTES = 1 << 20
#: the longest name an entry can store (a u32 length)
_NAME_LIMIT = 0xFFFFFFFF
assert _ENTRY.size == ENTRY_SIZE
# the constants as C values
_ENTRY_BYTES = cython.declare(cython.Py_ssize_t, ENTRY_SIZE)
_MAGIC = cython.declare(cython.Py_ssize_t, ENTRY_MAGIC)
_UNCHECKED = cython.declare(cython.Py_ssize_t, _UNCHECKED_INDEX_BYTES)


def key_hash(kind: InstanceType, name: bytes) -> int:
    """The bucket hash of a (kind, name) key."""
    return zlib.crc32(name, int(kind))


@cython.cclass
class Entry:
    """A decoded object header (read-only when compiled; a C type, so that decoding one on
    every lookup costs no dataclass construction)."""

    def __init__(self, offset: int, next: int, kind: InstanceType, is_array: bool, count: int,
                 elem_size: int, name: bytes, type_id: str, hash: int) -> None:
        self.offset = offset
        self.next = next
        self.kind = kind
        self.is_array = is_array
        self.count = count
        self.elem_size = elem_size
        self.name = name
        self.type_id = type_id
        self.hash = hash

    def __repr__(self) -> str:
        return (f"Entry(offset={self.offset}, next={self.next}, kind={self.kind!r}, "
                f"is_array={self.is_array}, count={self.count}, elem_size={self.elem_size}, "
                f"name={self.name!r}, type_id={self.type_id!r}, hash={self.hash})")

    @property
    def handle(self) -> int:
        """Where the object's data starts: the handle users see."""
        return self.offset + ENTRY_SIZE

    @property
    def display_name(self) -> str | None:
        """The name as users gave it (None for anonymous objects)."""
        return None if self.kind is InstanceType.ANONYMOUS else self.name.decode()


def entry_bytes(count: int, elem_size: int, name: bytes, type_id: bytes) -> int:
    """Block size an object needs: header, data (8-aligned), name, type identity."""
    data = (count * elem_size + 7) & ~7
    return ENTRY_SIZE + data + len(name) + len(type_id)


@cython.cclass
class NameIndex:
    """Operations on the in-segment index; holds only the buffer views, algorithm and root offset.

    Words of existing structures (chain links, bucket heads, the root's fields) are written
    through ``words``, the segment's word view, so they are journaled where the segment is.
    Compiled (``names.pxd``), the root check, the hash and the walk of a lookup and the links
    of a new entry run in C over the typed word view; only the entry found is decoded.
    """

    if TYPE_CHECKING:  # the C fields (names.pxd), as type checkers see them
        buf: memoryview
        words: Words
        algorithm: MemoryAlgorithm
        root: int
        safe_point: Callable[[int], None]

    def __init__(self, buf: memoryview, algorithm: MemoryAlgorithm, root: int, words: Words) -> None:
        self.buf = buf
        self.words = words
        self.algorithm = algorithm
        self.root = root
        #: called with the writes about to come before a long run of them, at a moment when
        #: the algorithm's structures are whole (the segment's journal takes room then)
        self.safe_point: Callable[[int], None] = lambda entries: None

    # -- creation ------------------------------------------------------------------------
    @staticmethod
    def create(buf: memoryview) -> int:
        """Initialise an empty index (no table yet) in the header; its root offset."""
        _ROOT.pack_into(buf, INDEX_ROOT_AT, 0, 0, 0, 0)
        return INDEX_ROOT_AT

    def root_fields(self) -> tuple[cython.Py_ssize_t, cython.Py_ssize_t, cython.Py_ssize_t,
                                   cython.Py_ssize_t]:
        """``(bucket_count, buckets, named, unique)``, checked: a power-of-two table inside the
        segment, counts that fit in the allocated bytes (``SegmentCorrupt`` otherwise)."""
        w: Words = self.words
        at: cython.Py_ssize_t = self.root >> 3
        if self.root & 7 or at < 0 or at > len(w.signed) - 4:
            raise SegmentCorrupt(f"named-object index at {self.root} lies outside the segment")
        count: cython.Py_ssize_t = w.signed[at]
        buckets: cython.Py_ssize_t = w.signed[at + 1]
        named: cython.Py_ssize_t = w.signed[at + 2]
        unique: cython.Py_ssize_t = w.signed[at + 3]
        if count == 0:
            if buckets or named or unique:
                raise SegmentCorrupt("named-object index has objects but no bucket table")
            return 0, 0, 0, 0
        if count < 0 or count & (count - 1) or buckets & 7 or buckets <= 0 \
                or count > (len(w.octets) - buckets) // 8:
            raise SegmentCorrupt(f"named-object index at {self.root} has an impossible bucket table")
        limit: cython.Py_ssize_t = len(w.octets) // _ENTRY_BYTES
        if named < 0 or unique < 0 or named > limit or unique > limit or (
                8 * count + (named + unique) * _ENTRY_BYTES > _UNCHECKED
                and 8 * count + (named + unique) * _ENTRY_BYTES > self._allocated_bytes()):
            raise SegmentCorrupt(f"named-object index at {self.root} claims {count} buckets and "
                                 f"{w[at + 2] + w[at + 3]} objects, more than the allocated "
                                 "blocks hold")
        return count, buckets, named, unique

    def _root(self) -> tuple[int, int, int, int]:
        return self.root_fields()

    def _block_size(self, offset: int) -> int:
        """Usable bytes of the block at ``offset``; 0 when it is not a live block."""
        try:
            return self.algorithm.usable_size(offset)
        except InvalidPointer:
            return 0

    def _allocated_bytes(self) -> int:
        """Bytes the algorithm has handed out: what any stored count must fit in."""
        return max(self.algorithm.size - self.algorithm.free_memory, 0)

    # -- entries -------------------------------------------------------------------------
    def read_entry(self, offset: int) -> Entry:
        """Decode the object header at ``offset``; ``InvalidPointer`` if there is none."""
        if offset < 0 or offset % 8 or offset + ENTRY_SIZE > len(self.buf):
            raise InvalidPointer(f"offset {offset} is not an object of this segment")
        nxt, magic, kind, flags, _, count, elem, name_len, type_len, hsh = _ENTRY.unpack_from(
            self.buf, offset
        )
        if magic != ENTRY_MAGIC or kind not in _KINDS:
            raise InvalidPointer(f"offset {offset} is not an object of this segment")
        name_at = offset + ENTRY_SIZE + ((count * elem + 7) & ~7)
        end = name_at + name_len + type_len
        if end > len(self.buf):
            raise SegmentCorrupt(f"object header at {offset} claims bytes past the segment end")
        if name_len + type_len > _UNCHECKED_NAME_BYTES and self._block_size(offset) < end - offset:
            raise SegmentCorrupt(f"object header at {offset} claims a {name_len}-byte name, "
                                 "more than its block holds")
        name = bytes(self.buf[name_at : name_at + name_len])
        try:
            name.decode()
            type_id = bytes(self.buf[name_at + name_len : end]).decode()
        except UnicodeDecodeError:
            raise SegmentCorrupt(f"object header at {offset} has a damaged name or type identity") from None
        return Entry(offset, nxt, _KINDS[kind], bool(flags & _FLAG_ARRAY), count, elem,
                     name, type_id, hsh)

    @staticmethod
    def entry_image(
        kind: InstanceType, is_array: bool, count: int, elem_size: int, name: bytes,
        type_id: bytes, element: bytes | None = None,
    ) -> bytes:
        """The bytes of a fresh (unlinked) object block: header, data (every element a copy of
        ``element``, zeros by default), name and type identity."""
        header = _ENTRY.pack(0, ENTRY_MAGIC, int(kind), _FLAG_ARRAY if is_array else 0, 0,
                             count, elem_size, len(name), len(type_id), key_hash(kind, name))
        data = element * count if element is not None else bytes(count * elem_size)
        padding = bytes(-len(data) % 8)
        return b"".join((header, data, padding, name, type_id))

    def _chain(self, head: int, walk: LinkWalk) -> Iterator[Entry]:
        """The entries of one bucket chain; ``walk`` bounds them (shared across chains when
        the caller walks the whole index)."""
        offset = head
        while offset:
            walk.step(offset)
            try:
                entry = self.read_entry(offset)
            except InvalidPointer:
                raise SegmentCorrupt(f"named-object chain reaches {offset}, not an object") from None
            yield entry
            offset = entry.next

    def _walk(self, named: int, unique: int) -> LinkWalk:
        """A walk bounded by the stored object count (no chain holds more)."""
        return LinkWalk(named + unique, "named-object chain", "the index counts")

    def _bucket_at(self, buckets: int, bucket_count: int, hsh: int) -> int:
        return buckets + 8 * (hsh & (bucket_count - 1))

    def linked_tag(self, offset: cython.Py_ssize_t, budget: cython.Py_ssize_t,
                   counted: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The tag word of the entry a chain link reaches, with ``budget`` more links allowed
        (of the ``counted`` objects the index holds): the checks every chain walk makes, so a
        link that is not an entry, or a chain longer than the count, is ``SegmentCorrupt``."""
        w: Words = self.words
        if offset & 7 or offset < 0 or offset > len(w.octets) - _ENTRY_BYTES:
            raise SegmentCorrupt(f"named-object chain reaches {offset}, not an object")
        if budget == 0:
            raise SegmentCorrupt(f"named-object chain is longer than the index counts ({counted})")
        tag: cython.Py_ssize_t = w.signed[(offset >> 3) + 1]
        if tag & 0xFFFFFFFF != _MAGIC or not 1 <= (tag >> 32) & 0xFF <= 3:
            raise SegmentCorrupt(f"named-object chain reaches {offset}, not an object")
        return tag

    def find(self, kind: InstanceType, name: bytes) -> Entry | None:
        """The entry keyed (kind, name), if any: the chain of its bucket walked over the words,
        bounded by the stored object count; only a candidate with the same hash and kind is
        decoded."""
        count: cython.Py_ssize_t
        buckets: cython.Py_ssize_t
        named: cython.Py_ssize_t
        unique: cython.Py_ssize_t
        count, buckets, named, unique = self.root_fields()
        if not count or len(name) > _NAME_LIMIT:
            return None
        w: Words = self.words
        code: cython.Py_ssize_t = kind
        hsh: cython.Py_ssize_t = name_crc(name, code)
        budget: cython.Py_ssize_t = named + unique
        offset: cython.Py_ssize_t = w.signed[(buckets >> 3) + (hsh & (count - 1))]
        tag: cython.Py_ssize_t
        while offset:
            tag = self.linked_tag(offset, budget, named + unique)
            budget -= 1
            if w.signed[(offset >> 3) + 5] & 0xFFFFFFFF == hsh and (tag >> 32) & 0xFF == code:
                entry = self.read_entry(offset)  # (its lengths checked: a lie is damage)
                if entry.name == name:
                    return entry
            offset = w.signed[offset >> 3]
        return None

    def ensure_table(self) -> bool:
        """Make sure a bucket table exists (before an object is built); False when no room."""
        return self._root()[0] > 0 or self.rehash(_INITIAL_BUCKETS)

    def link(self, entry_offset: cython.Py_ssize_t, kind: InstanceType, name: bytes) -> None:
        """Put a written entry into its bucket and count it (grows the table when it can).

        ``ensure_table`` must have succeeded first."""
        count: cython.Py_ssize_t
        buckets: cython.Py_ssize_t
        named: cython.Py_ssize_t
        unique: cython.Py_ssize_t
        count, buckets, named, unique = self.root_fields()
        if named + unique + 1 > count:
            self.rehash(count * 2)
            count, buckets, named, unique = self.root_fields()
        assert count, "link() before ensure_table()"
        w: Words = self.words
        code: cython.Py_ssize_t = kind
        slot: cython.Py_ssize_t = (buckets >> 3) + (name_crc(name, code) & (count - 1))
        head: cython.Py_ssize_t = w.signed[slot]
        if head < 0:
            raise SegmentCorrupt(f"named-object chain reaches {w[slot]}, not an object")
        w.put(entry_offset >> 3, head)
        w.put(slot, entry_offset)
        self._count(kind, +1)

    def unlink(self, entry: Entry) -> None:
        """Take an entry out of its bucket chain."""
        count, buckets, named, unique = self._root()
        if not count:
            raise SegmentCorrupt(f"object at {entry.offset} claims a name but the index is empty")
        slot = self._bucket_at(buckets, count, entry.hash)
        (head,) = struct.unpack_from("<Q", self.buf, slot)
        prev_field = slot
        for candidate in self._chain(head, self._walk(named, unique)):
            if candidate.offset == entry.offset:
                self.words[prev_field >> 3] = candidate.next
                self._count(entry.kind, -1)
                return
            prev_field = candidate.offset
        raise SegmentCorrupt(f"object at {entry.offset} is not in its index chain")

    def _count(self, kind: InstanceType, delta: int) -> None:
        field = (self.root + (16 if kind is InstanceType.NAMED else 24)) >> 3
        value = self.words[field] + delta
        if value < 0:
            raise SegmentCorrupt(f"named-object index at {self.root} counts fewer objects than it holds")
        self.words[field] = value

    def counts(self) -> tuple[int, int]:
        """(named, unique) object counts."""
        _, _, named, unique = self._root()
        return named, unique

    def entries(self) -> Iterator[Entry]:
        """Every indexed entry (named and unique), bucket by bucket; all the chains together
        hold no more than the stored count."""
        count, buckets, named, unique = self._root()
        if count:
            self._check_table(buckets, count)
        walk = self._walk(named, unique)
        for slot in range(buckets, buckets + 8 * count, 8):
            (head,) = struct.unpack_from("<Q", self.buf, slot)
            yield from self._chain(head, walk)

    def verify(self, claim: Callable[[int, int], None],
               claim_entry: Callable[[Entry], Callable[[int, int], None]]) -> list[Entry]:
        """The deep check of the index: the root and its bucket table (``claim``-ed), every
        chain (bounded, cycle-detecting), every entry in the bucket its hash names, with the
        hash of its key, and a live block of its size (``claim_entry(entry)``'s claim); the
        counts agree with the entries. Returns the entries, for the objects' own checks."""
        count, buckets, named, unique = self._root()
        if not count:
            return []
        self._check_table(buckets, count)
        claim(buckets, 8 * count)
        walk = self._walk(named, unique)
        found: list[Entry] = []
        for bucket in range(count):
            (head,) = struct.unpack_from("<Q", self.buf, buckets + 8 * bucket)
            for entry in self._chain(head, walk):
                if entry.kind is InstanceType.ANONYMOUS:
                    raise SegmentCorrupt(f"anonymous object at {entry.offset} is indexed")
                if entry.hash != key_hash(entry.kind, entry.name):
                    raise SegmentCorrupt(f"object at {entry.offset} ({entry.name!r}) has a "
                                         "damaged name hash")
                if entry.hash & (count - 1) != bucket:
                    raise SegmentCorrupt(f"object at {entry.offset} ({entry.name!r}) is filed "
                                         f"in bucket {bucket}, its hash names another")
                if not entry.is_array and entry.count != 1:
                    raise SegmentCorrupt(f"object at {entry.offset} ({entry.name!r}) is one "
                                         f"element but counts {entry.count}")
                claim_entry(entry)(entry.offset, entry_bytes(
                    entry.count, entry.elem_size, entry.name, entry.type_id.encode()))
                found.append(entry)
        kinds = [entry.kind for entry in found]
        counted = (kinds.count(InstanceType.NAMED), kinds.count(InstanceType.UNIQUE))
        if counted != (named, unique):
            raise SegmentCorrupt(f"name index counts {(named, unique)} objects but holds {counted}")
        return found

    def _check_table(self, buckets: int, count: int) -> None:
        """The bucket table is a live block big enough for its buckets (before walking them
        all: a lying count must not cost a walk of the claimed size)."""
        try:
            room = self.algorithm.usable_size(buckets)
        except InvalidPointer:
            raise SegmentCorrupt(f"named-object bucket table {buckets} is not a live block") from None
        if room < 8 * count:
            raise SegmentCorrupt(f"named-object bucket table {buckets} holds {room} bytes, "
                                 f"not {count} buckets")

    def rehash(self, bucket_count: int) -> bool:
        """Move every entry to a table of ``bucket_count`` buckets; False when there is no room.

        Old chains are walked over the words as ``find`` walks one (each link checked, all of
        them bounded by the stored object count), every entry put at the head of its new
        bucket in table order; each store goes through ``words`` (journaled)."""
        old_count: cython.Py_ssize_t
        old_buckets: cython.Py_ssize_t
        named: cython.Py_ssize_t
        unique: cython.Py_ssize_t
        old_count, old_buckets, named, unique = self.root_fields()
        if bucket_count <= old_count:
            return True
        self.safe_point(bucket_count + named + unique + 2)  # and the table's allocation
        new_buckets = self.algorithm.allocate(8 * bucket_count)
        if new_buckets is None:
            return False
        if old_count:
            self._check_table(old_buckets, old_count)
        w: Words = self.words
        count: cython.Py_ssize_t = bucket_count
        first: cython.Py_ssize_t = new_buckets >> 3
        budget: cython.Py_ssize_t = named + unique
        slot: cython.Py_ssize_t
        offset: cython.Py_ssize_t
        following: cython.Py_ssize_t
        bucket: cython.Py_ssize_t
        for slot in range(first, first + count):
            w.put(slot, 0)
        for bucket in range(old_count):
            offset = w.signed[(old_buckets >> 3) + bucket]
            while offset:
                self.linked_tag(offset, budget, named + unique)
                budget -= 1
                following = w.signed[offset >> 3]
                slot = first + (w.signed[(offset >> 3) + 5] & 0xFFFFFFFF & (count - 1))
                w.put(offset >> 3, w.signed[slot])
                w.put(slot, offset)
                offset = following
        root: cython.Py_ssize_t = self.root >> 3
        w.put(root, count)
        w.put(root + 1, new_buckets)
        if old_buckets:
            self.algorithm.deallocate(old_buckets)
        return True

    def drop_table(self) -> None:
        """Free an empty bucket table (undoing ``ensure_table`` when a construct fails)."""
        count, buckets, named, unique = self._root()
        if buckets and not named + unique:
            for word in range(self.root >> 3, (self.root >> 3) + 2):
                self.words[word] = 0
            self.algorithm.deallocate(buckets)

    def table_block(self) -> int | None:
        """The bucket table's block (the index's only allocation), if any."""
        return self._root()[1] or None
