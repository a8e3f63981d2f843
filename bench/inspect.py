"""Read-only examination of a segment: what ``segalloc check`` and ``segalloc inspect`` report.

A segment is opened with ``Mode.OPEN_READ_ONLY`` through a registered backend (``mapped_file``
for a path, ``shared_memory`` for a name), so its bytes are never changed: the mapping refuses
writes and the segment manager refuses every mutating call. Every part of the report is taken
on its own, so a damaged part is reported as that part's error while the rest is still shown.
Functions here return data; printing is the CLI's business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from segalloc import InvalidPointer, InvalidSegment, Mode, Segment, managed_class, plugins
from segalloc.header import HEADER_SIZE, SegmentHeader

__all__ = ["FILE_BACKEND", "SHM_BACKEND", "check", "format_inspection", "inspect", "open_read_only"]

#: the registered backend a path is opened through
FILE_BACKEND = "mapped_file"
#: the registered backend a shared-memory name is opened through
SHM_BACKEND = "shared_memory"
#: errors that mean "the bytes are not a sane segment" (damage, not a caller mistake)
_PROBLEMS = (InvalidSegment, InvalidPointer)


def open_read_only(backend: str, name: str, timeout: float | None = None) -> Segment:
    """Open segment ``name`` read-only through registered ``backend``; every wait for its
    lock (the open's and each later operation's) lasts at most ``timeout`` seconds.

    ``InvalidSegment`` (or ``SegmentCorrupt``) when the bytes are not a segment (or not a
    regular file); ``LockTimeout`` (a ``TimeoutError``) naming the holder when the lock stays
    taken; ``OSError`` when the backing object cannot be opened (missing, permissions).
    """
    storage_class = plugins().backends.get(backend)
    if storage_class is None:
        raise InvalidSegment(f"backend {backend!r} is not installed")
    return managed_class(storage_class)(Mode.OPEN_READ_ONLY, name, timeout=timeout)


def check(segment: Segment) -> str | None:
    """The first inconsistency ``verify`` finds in ``segment``, or None when it is sane."""
    try:
        segment.verify()
    except _PROBLEMS as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _part(read: Callable[[], Any]) -> Any:
    """``read()``, or ``{"error": ...}`` naming the damage that stopped it."""
    try:
        return read()
    except _PROBLEMS as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _header(segment: Segment) -> dict[str, Any]:
    header = SegmentHeader.read(segment.buffer, segment.get_size())
    return {"header_size": HEADER_SIZE, **dataclasses.asdict(header)}


def _algorithm(segment: Segment) -> dict[str, Any]:
    alg = segment.algorithm
    cls = type(alg)
    return {
        "name": alg.name,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "layout_version": alg.layout_version,
        "ALIGNMENT": alg.ALIGNMENT,
        "PAYLOAD_PER_ALLOCATION": alg.PAYLOAD_PER_ALLOCATION,
        "MIN_SEGMENT_SIZE": alg.MIN_SEGMENT_SIZE,
    }


def _sizes(segment: Segment) -> dict[str, int]:
    size = segment.get_size()
    free = segment.get_free_memory()
    return {"segment": size, "region": segment.algorithm.size, "free": free, "used": size - free}


def _objects(listing: Callable[[], list[Any]]) -> list[dict[str, Any]]:
    return [
        {"name": obj.name, "type_id": obj.type_id, "count": obj.count, "handle": obj.handle}
        for obj in listing()
    ]


def _free_blocks(segment: Segment) -> dict[str, Any]:
    """Count, total, largest and smallest free block, a histogram by power-of-two size class
    (``"<= 2**k"``), and fragmentation = 1 - largest / total free (0 with nothing free)."""
    sizes = [size for _, size in segment.free_blocks()]
    total = sum(sizes)
    largest = max(sizes, default=0)
    histogram: dict[str, int] = {}
    for size in sorted(sizes):
        bucket = f"<= 2**{max(size - 1, 0).bit_length()}"
        histogram[bucket] = histogram.get(bucket, 0) + 1
    return {
        "count": len(sizes),
        "total": total,
        "largest": largest,
        "smallest": min(sizes, default=0),
        "histogram": histogram,
        "fragmentation": 1 - largest / total if total else 0.0,
    }


def inspect(segment: Segment) -> dict[str, Any]:
    """Everything ``segalloc inspect`` reports, as one JSON-ready document."""
    problem = check(segment)
    return {
        "storage": repr(segment.storage),
        "sane": problem is None,
        "problem": problem,
        "header": _part(lambda: _header(segment)),
        "algorithm": _algorithm(segment),
        "sizes": _part(lambda: _sizes(segment)),
        "named_objects": _part(lambda: _objects(segment.named_objects)),
        "unique_objects": _part(lambda: _objects(segment.unique_objects)),
        "free_blocks": _part(lambda: _free_blocks(segment)),
    }


def _section(title: str, body: Any, lines: Callable[[Any], list[str]]) -> list[str]:
    if isinstance(body, dict) and set(body) == {"error"}:
        return [f"{title}: cannot be read: {body['error']}"]
    return [f"{title}:", *(f"  {line}" for line in lines(body))]


def _pairs(fields: dict[str, Any]) -> list[str]:
    width = max((len(key) for key in fields), default=0)
    return [f"{key:<{width}}  {value}" for key, value in fields.items()]


def _object_lines(objects: list[dict[str, Any]]) -> list[str]:
    if not objects:
        return ["(none)"]
    return [f"{obj['name']!r}  type {obj['type_id']}  count {obj['count']}  handle {obj['handle']}"
            for obj in objects]


def _free_lines(free: dict[str, Any]) -> list[str]:
    summary = {key: value for key, value in free.items() if key != "histogram"}
    summary["fragmentation"] = f"{free['fragmentation']:.4f}"
    classes = ", ".join(f"{bucket}: {count}" for bucket, count in free["histogram"].items())
    return [*_pairs(summary), f"by size  {classes or '(none)'}"]


def format_inspection(report: dict[str, Any]) -> list[str]:
    """The report of ``inspect`` as text lines."""
    status = "sane" if report["sane"] else f"NOT sane: {report['problem']}"
    return [
        f"segment {report['storage']}: {status}",
        *_section("header", report["header"], _pairs),
        *_section("algorithm", report["algorithm"], _pairs),
        *_section("sizes (bytes)", report["sizes"], _pairs),
        *_section("named objects", report["named_objects"], _object_lines),
        *_section("unique objects", report["unique_objects"], _object_lines),
        *_section("free blocks", report["free_blocks"], _free_lines),
    ]
