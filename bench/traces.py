"""The allocation-trace format (docs/architecture.md): reading, validating and summarising traces.

One operation a line: ``a ID SIZE [ALIGN]`` allocate, ``f ID`` free, ``r ID SIZE`` reallocate;
plain text or gzip (detected by its magic bytes, not the file name). Blank lines and lines
starting with ``#`` are skipped. An ID is allocated, then freed or reallocated while live, and
may be allocated again once freed (traces keyed by address reuse them); anything else is a
malformed trace, refused with its line number. IDs are renumbered densely at read time so the replay loop
indexes lists instead of hashing.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALLOC", "FREE", "REALLOC", "Trace", "TraceError", "read_trace", "parse_lines"]

ALLOC, FREE, REALLOC = 0, 1, 2
_CODES = {"a": ALLOC, "f": FREE, "r": REALLOC}
_FIELDS = {ALLOC: (3, 4), FREE: (2, 2), REALLOC: (3, 3)}

#: one operation: (code, dense id, size, alignment); size and alignment are 0 where unused
Op = tuple[int, int, int, int]


class TraceError(ValueError):
    """A trace that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Trace:
    """A parsed trace plus the figures that do not depend on the algorithm."""

    name: str
    ops: list[Op]
    ids: int
    #: max over time of the live requested bytes, replaying with no failure
    peak_live: int
    #: index of the op after which ``peak_live`` is first reached
    peak_index: int


def _open_text(path: Path) -> Iterator[str]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rt", encoding="ascii", errors="strict") as lines:
        yield from lines


def parse_lines(lines: Iterable[str], name: str = "<trace>") -> Trace:
    """Parse trace lines; ``TraceError`` names the first malformed line by number."""
    ops: list[Op] = []
    dense: dict[str, int] = {}
    sizes: dict[int, int] = {}
    live = peak = peak_index = 0
    try:
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            code = _CODES.get(fields[0])
            if code is None:
                raise TraceError(f"{name}:{number}: unknown operation {fields[0]!r} (a, f or r)")
            low, high = _FIELDS[code]
            if not low <= len(fields) <= high:
                raise TraceError(f"{name}:{number}: {fields[0]!r} takes {low - 1}"
                                 f"{'-' + str(high - 1) if high != low else ''} fields: {line.strip()!r}")
            try:
                numbers = [int(field) for field in fields[2:]]
            except ValueError:
                raise TraceError(f"{name}:{number}: sizes must be integers: {line.strip()!r}") from None
            if any(value < 0 for value in numbers):
                raise TraceError(f"{name}:{number}: negative size: {line.strip()!r}")
            size = numbers[0] if numbers else 0
            align = numbers[1] if len(numbers) > 1 else 0
            if align and align & (align - 1):
                raise TraceError(f"{name}:{number}: alignment {align} is not a power of two")
            ident = dense.setdefault(fields[1], len(dense))
            if (code == ALLOC) == (ident in sizes):
                raise TraceError(
                    f"{name}:{number}: ID {fields[1]} is allocated again while live"
                    if code == ALLOC else
                    f"{name}:{number}: {fields[0]!r} of ID {fields[1]}, which is not live "
                    "(never allocated, or freed before)")
            ops.append((code, ident, size, align))
            if code == ALLOC:
                live += size
                sizes[ident] = size
            else:
                live += (size if code == REALLOC else 0) - sizes[ident]
                if code == FREE:
                    del sizes[ident]
                else:
                    sizes[ident] = size
            if live > peak:
                peak, peak_index = live, len(ops) - 1
    except UnicodeDecodeError:
        raise TraceError(f"{name}: not a text trace (undecodable bytes)") from None
    except (OSError, EOFError) as exc:
        raise TraceError(f"{name}: {exc}") from None
    return Trace(name, ops, len(dense), peak, peak_index)


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace file (plain or gzip)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; a trace file was expected")
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    return parse_lines(_open_text(path), path.name)


def write_trace(ops: Iterable[Op], path: str | os.PathLike[str]) -> None:
    """Write operations in the trace format (gzip when the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    names = "afr"
    with opener(path, "wt", encoding="ascii") as out:
        for code, ident, size, align in ops:
            fields = [names[code], str(ident)]
            if code != FREE:
                fields.append(str(size))
            if align:
                fields.append(str(align))
            out.write(" ".join(fields) + "\n")
