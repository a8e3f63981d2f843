"""The fixed segment header at offset 0, and its validation on open.

Layout (little-endian, 128 bytes; the algorithm's region starts right after it)::

     0  magic           8s   b"SEGALLOC"
     8  format_version  u32  FORMAT_VERSION
    12  header_size     u32  HEADER_SIZE
    16  total_size      u64  bytes in the whole segment, header included
    24  algorithm       32s  plugin name, UTF-8, NUL padded
    56  layout_version  u32  the algorithm's on-disk layout version
    60  (reserved)      u32
    64  index_offset    u64  offset of the named-object index (0: none yet)
    72  journal_offset  u64  offset of the undo journal (0: none; see segalloc.journal)
    80  checksum        u32  CRC-32 of bytes [0, 80)
    84  (reserved)      u32
    88  dirty           u64  transaction word, outside the checksum (see segalloc.journal)
    96  index root      32 bytes: the named-object index's root (segalloc.names), outside
                         the checksum
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from dataclasses import dataclass

from segalloc.errors import InvalidSegment

__all__ = ["DIRTY_AT", "HEADER_SIZE", "INDEX_ROOT_AT", "MAGIC", "SegmentHeader"]

MAGIC = b"SEGALLOC"
#: 2: type identities name no module (segalloc.objects); 1 stored "module.Qualname/size" ids,
#: which this version cannot match, so such segments are refused rather than misread
FORMAT_VERSION = 2
#: what each earlier format version was, for the refusal message
_EARLIER_FORMATS = {1: "type identities with module paths"}
HEADER_SIZE = 128
NAME_FIELD = 32

_FIXED = struct.Struct("<8sII Q 32s II QQ")  # bytes [0, 80): everything the checksum covers
_CHECKSUM_AT = 80
DIRTY_AT = 88
INDEX_ROOT_AT = 96
assert _FIXED.size == _CHECKSUM_AT


@dataclass(frozen=True)
class SegmentHeader:
    """The decoded header: what ``open`` needs to pick the algorithm and validate the bytes."""

    total_size: int
    algorithm: str
    layout_version: int
    index_offset: int
    journal_offset: int = 0

    def write(self, buf: memoryview) -> None:
        """Encode into ``buf[0:HEADER_SIZE]`` with a fresh checksum (the dirty word is kept)."""
        name = self.algorithm.encode()
        if len(name) >= NAME_FIELD:
            raise ValueError(f"algorithm name {self.algorithm!r} is longer than {NAME_FIELD - 1} bytes")
        fixed = _FIXED.pack(
            MAGIC, FORMAT_VERSION, HEADER_SIZE, self.total_size, name,
            self.layout_version, 0, self.index_offset, self.journal_offset,
        )
        # the magic last, in one word: a creator killed while writing leaves no magic (an
        # unformatted object, which the next opener may create again), never a bad checksum
        buf[len(MAGIC) : _CHECKSUM_AT] = fixed[len(MAGIC) :]
        struct.pack_into("<II", buf, _CHECKSUM_AT, zlib.crc32(fixed), 0)
        buf[0 : len(MAGIC)] = MAGIC

    @classmethod
    def read(cls, buf: memoryview, backing_size: int) -> SegmentHeader:
        """Decode and validate; ``InvalidSegment`` names the first thing that is wrong."""
        if len(buf) < HEADER_SIZE:
            raise InvalidSegment(f"{len(buf)} bytes is smaller than a segment header ({HEADER_SIZE})")
        fixed = bytes(buf[0:_CHECKSUM_AT])
        magic, version, header_size, total, name, layout, _, index, journal = _FIXED.unpack(fixed)
        if magic != MAGIC:
            raise InvalidSegment(f"bad magic {magic!r}: these bytes are not a segalloc segment")
        if version in _EARLIER_FORMATS:
            raise InvalidSegment(
                f"segment format version {version} ({_EARLIER_FORMATS[version]}) was written by an "
                f"earlier segalloc; this one reads format version {FORMAT_VERSION} only: copy the "
                "objects out with the earlier segalloc and into a new segment"
            )
        if version != FORMAT_VERSION:
            raise InvalidSegment(f"segment format version {version}, this segalloc reads {FORMAT_VERSION}")
        if header_size != HEADER_SIZE:
            raise InvalidSegment(f"header size {header_size}, expected {HEADER_SIZE}")
        (checksum,) = struct.unpack_from("<I", buf, _CHECKSUM_AT)
        if checksum != zlib.crc32(fixed):
            raise InvalidSegment("header checksum mismatch: the header is damaged")
        if total != backing_size:
            raise InvalidSegment(
                f"header says the segment is {total} bytes but the backing object has {backing_size}"
            )
        try:
            algorithm = name.rstrip(b"\0").decode()
        except UnicodeDecodeError:
            raise InvalidSegment("the algorithm name in the header is not UTF-8") from None
        if index != INDEX_ROOT_AT and not HEADER_SIZE <= index < total:
            raise InvalidSegment(f"named-object index offset {index} lies outside the segment")
        if journal and not HEADER_SIZE <= journal < total:
            raise InvalidSegment(f"journal offset {journal} lies outside the segment")
        return cls(total, algorithm, layout, index, journal)

    @staticmethod
    def peek(buf: memoryview) -> tuple[int, int]:
        """``(total_size, journal_offset)`` as stored, unvalidated (0, 0 when too short): what
        recovery needs before the header can be trusted."""
        if len(buf) < HEADER_SIZE:
            return 0, 0
        (total,) = struct.unpack_from("<Q", buf, 16)
        (journal,) = struct.unpack_from("<Q", buf, 72)
        return total, journal

    def replace(self, **changes: int | str) -> SegmentHeader:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
