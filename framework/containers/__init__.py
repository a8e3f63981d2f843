"""Containers that live in a segment: ``SegmentList``, ``SegmentVector``, ``SegmentString``,
``SegmentDict``.

Everything a container keeps is in the segment: its fixed header sits in the constructed
object's block and its nodes and buffers are blocks of the segment's algorithm, linked by
offsets from the segment start. So a container constructed under a name is found again, with
the same contents, from another ``Segment`` object, another process or a byte copy of the
segment. The Python objects users hold are proxies (the segment and the handle, nothing
cached); every operation is one segment operation: under the storage lock, inside the segment's
journal transaction where it has one, so a process killed mid-insert is rolled back whole.

``SegmentList[c_int]`` (any ctypes element type that is not a pointer) makes a concrete
container class, cached per element type; its type identity names the element type by its
storage, never a module (``SegmentList[c_int32]``, see ``segalloc.objects``), so ``find`` with
another element type raises ``TypeError``. Python types may stand for their storage: ``int`` is
``c_int64``, ``float`` ``c_double``, ``bool`` ``c_bool``, ``str`` ``SegmentString``, so
``SegmentDict[str, int] is SegmentDict[SegmentString, c_int64]``. ``SegmentDict[K, V]`` and
``SegmentList[T]`` also take ``SegmentString`` and ``bytes`` (values of any length); a
``SegmentVector`` is one contiguous buffer of fixed-size elements and refuses them. Dict keys
are hashed with CRC-32 of their stored bytes, which every process agrees on (Python's own
``hash`` is salted per process), and compare by those bytes.

Rules every container keeps:

- Exception safety: an operation that cannot get memory raises ``BadAlloc`` before it changes
  anything; a value that cannot be stored raises ``TypeError`` (``OverflowError`` when out of
  range) before any allocation.
- Destroying the object (``seg.destroy`` / ``seg.destroy_ptr``) frees every node and buffer.
- Moved memory: a relocating ``grow`` / ``shrink_to_fit`` of a heap segment bumps
  ``seg.generation``; a proxy taken before raises ``InvalidPointer`` on its next use (it never
  reads the old copy). Fetch it again: ``seg.get_object_from_handle(SegmentList[c_int], h)``.
- Buffer views: ``vec.memoryview()`` and ``numpy.asarray(vec)`` of a scalar ``SegmentVector``
  view its live elements; while one is alive, what would move or free that buffer in this
  process (growing past capacity, ``clear``, destroying it, a heap ``grow``) raises
  ``BufferError``, as ``bytearray`` does while exported.
- Read-only segments: reads work, mutations raise ``ReadOnlySegment``. A closed segment's
  proxies raise ``ValueError``; a destroyed container's proxies must not be used (as in Boost).
- Iteration, slicing and ``keys()``/``values()``/``items()`` return snapshots taken under the
  lock, so they never see a half-done change by another thread or process.
- Damaged bytes raise ``SegmentCorrupt`` naming the container, never an ``IndexError`` or
  ``struct.error`` of the code that trusted them, and cost what the segment really holds:
  every walk detects cycles (``segalloc.walks``) and is bounded by the stored length, which is
  itself checked against the bytes the allocator has handed out before anything is sized by it.
- ``segment_verify`` (the deep check ``Segment.verify`` runs) walks every link, length, bucket
  table and buffer, and claims every block the container owns.

The package, one module a responsibility, each importing only those above it: ``codecs``
(how a value is stored as bytes), ``proxy`` (what every container shares: the segment
operation, the proxy, the concrete classes), ``buffers`` (the growable buffer of vectors and
strings), ``string`` (``SegmentString``), ``elements`` (the element types a container takes),
``sequence`` (the list protocol of lists and vectors), then ``list``, ``vector`` and ``dict``.
"""

from __future__ import annotations

from segalloc.containers.dict import SegmentDict
from segalloc.containers.list import SegmentList
from segalloc.containers.string import SegmentString
from segalloc.containers.vector import SegmentVector

__all__ = ["SegmentDict", "SegmentList", "SegmentString", "SegmentVector"]
