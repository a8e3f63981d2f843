"""One build's side of the differential test (``tests/test_differential.py``).

A module is loaded once per process, so the compiled and the interpreted build of segalloc cannot
share one: the test starts this script twice, once with ``SEGALLOC_PURE_PYTHON=1`` in its
environment, and sends both the same runs over a socket (``multiprocessing.connection``,
its file descriptor the first argument). A run is a set-up (a bare algorithm over a byte
buffer, or a segment of a backend) and a list of operations; the answer is, for every step,
the result (offsets, sizes, flags: plain values), the type name of the exception raised, and
a digest of every byte of the segment. ``("bytes", set-up, operations)`` runs again and answers
the bytes themselves, for the test to show where two builds first differ.

Operations name blocks by their place in the list of live handles this run has handed out, so
one list of operations means the same thing in both builds as long as their results agree
(the test stops at the first step where they do not). ``--skew N`` asks every ``allocate`` for
``N`` bytes more than the operation says, and the ``crash`` operation ends the process as a
segfault would: with them the test proves that a difference and a crash fail the comparison.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import segalloc
from segalloc import (
    ANONYMOUS,
    UNIQUE,
    Command,
    ManagedHeapMemory,
    ManagedMappedFile,
    Mode,
    SegmentDict,
    SegmentList,
    SegmentString,
    SegmentVector,
    plugins,
)

#: where a bare algorithm's region starts in its buffer (a segment header's worth)
START = 64
#: bytes of buffer past a bare algorithm's region, for ``grow`` to take in
GROW_ROOM = 8192


class Point(ctypes.Structure):
    """A record type for named objects (the same class, so the same type id, in both builds)."""

    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_double)]


#: the types named objects are made of, by the name operations use: (type, its arguments)
TYPES: dict[str, tuple[type, Callable[[int], tuple[Any, ...]]]] = {
    "int64": (ctypes.c_int64, lambda value: (value,)),
    "double": (ctypes.c_double, lambda value: (value / 4,)),
    "point": (Point, lambda value: (value, value / 2)),
    "bytes24": (ctypes.c_uint8 * 24, lambda value: tuple(range(value % 7))),
}
SENTINELS = {"<unique>": UNIQUE, "<anonymous>": ANONYMOUS}
#: the dicts dict operations use, by name: str -> int takes the word path for its values,
#: bytes -> str the codecs' for both
DICTS: dict[str, type] = {"counts": SegmentDict[str, int], "blobs": SegmentDict[bytes, str]}
#: the dict header's words a ``dict_damage`` operation may overwrite (framework/containers/dict.py)
DICT_WORDS = {"next": 0, "prev": 1, "length": 2, "buckets": 3, "count": 4}
#: the sequences sequence operations use, by name: ints take the word path for their elements,
#: texts the codecs' (nodes of varying size), the vectors a growable buffer
SEQUENCES: dict[str, type] = {"ints": SegmentList[int], "texts": SegmentList[str],
                              "vec": SegmentVector[int], "reals": SegmentVector[float]}


class Abort(Exception):
    """Raised at the end of a transaction the operation asks to fail (so it rolls back)."""


class Run:
    """One set-up and the live handles its operations have been given, in order."""

    def __init__(self, setup: dict[str, Any], scratch: Path, skew: int) -> None:
        self.skew = skew
        self.live: list[int] = []
        self.path: Path | None = None
        cls = plugins().algorithm(setup["algorithm"])
        if setup["kind"] == "algorithm":
            self.raw = bytearray(START + setup["size"] + GROW_ROOM)
            self.target: Any = cls.format(memoryview(self.raw), START, setup["size"])
            self.segment = None
        elif setup["backend"] == "heap":
            self.segment = self.target = ManagedHeapMemory(setup["size"],
                                                           algorithm=setup["algorithm"])
        else:
            self.path = scratch / "segment"
            self.segment = self.target = ManagedMappedFile(
                Mode.CREATE_ONLY, self.path, setup["size"], algorithm=setup["algorithm"])

    @property
    def buffer(self) -> Any:
        return self.raw if self.segment is None else self.segment.buffer

    def close(self) -> None:
        if self.segment is not None:
            self.segment.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    # -- naming blocks and objects -----------------------------------------------------------
    def pick(self, choice: tuple[int, int] | None) -> int | None:
        """``(index, delta)``: the live handle at ``index`` (modulo) plus ``delta``, or ``delta``
        itself when nothing is live; None stays None."""
        if choice is None:
            return None
        index, delta = choice
        return self.live[index % len(self.live)] + delta if self.live else delta

    def handed_out(self, offset: int | None) -> int | None:
        if offset is not None and offset not in self.live:
            self.live.append(offset)
        return offset

    def freed(self, offset: int | None) -> None:
        if offset in self.live:
            self.live.remove(offset)

    def handle_of(self, obj: Any) -> int:
        assert self.segment is not None
        return int(self.segment.get_handle_from_address(obj))

    # -- operations on both kinds of target ----------------------------------------------------
    def op_allocate(self, size: int) -> int | None:
        size += self.skew
        if self.segment is None:
            return self.handed_out(self.target.allocate(size))
        return self.handed_out(self.segment.allocate(size))

    def op_allocate_aligned(self, size: int, alignment: int) -> int | None:
        return self.handed_out(self.target.allocate_aligned(size, alignment))

    def op_allocate_many(self, sizes: list[int]) -> list[int] | None:
        offsets = self.target.allocate_many(sizes)
        for offset in offsets or ():
            self.handed_out(offset)
        return None if offsets is None else list(offsets)

    def op_deallocate(self, choice: tuple[int, int]) -> None:
        offset = self.pick(choice)
        self.target.deallocate(offset)
        self.freed(offset)

    def op_deallocate_many(self, choices: list[tuple[int, int]]) -> None:
        offsets = [self.pick(choice) for choice in choices]
        self.target.deallocate_many(offsets)
        for offset in offsets:
            self.freed(offset)

    def op_allocation_command(self, command: int, limit: int, preferred: int,
                              choice: tuple[int, int] | None) -> tuple[int | None, int]:
        reuse = self.pick(choice)
        offset, received = self.target.allocation_command(Command(command), limit, preferred,
                                                          reuse)
        if offset is not None and offset != reuse:
            self.freed(reuse)
            self.handed_out(offset)
        return offset, received

    def op_usable_size(self, choice: tuple[int, int]) -> int:
        return int(self.target.usable_size(self.pick(choice)))

    def op_fill(self, choice: tuple[int, int], byte: int) -> int:
        """Write ``byte`` over the block's usable bytes (user data the algorithm must keep)."""
        offset = self.pick(choice)
        size = self.target.usable_size(offset)
        if self.segment is None:
            self.raw[offset:offset + size] = bytes([byte]) * size
        else:
            self.segment.write(offset, bytes([byte]) * size)
        return int(size)

    def op_grow(self, extra: int) -> None:
        self.target.grow(extra)

    def op_shrink_to_fit(self) -> int:
        return int(self.target.shrink_to_fit())

    def op_zero_free_memory(self) -> None:
        self.target.zero_free_memory()

    def op_observe(self) -> tuple[Any, ...]:
        """What an algorithm tells about itself (and a segment about its objects)."""
        if self.segment is None:
            alg = self.target
            return (alg.size, alg.free_memory, alg.check_sanity(), alg.all_memory_deallocated(),
                    list(alg.free_blocks()), list(alg.allocated_blocks()))
        seg = self.segment
        return (seg.get_size(), seg.get_free_memory(), seg.check_sanity(),
                seg.all_memory_deallocated(), list(seg.free_blocks()),
                [_listed(entry) for entry in seg.named_objects()],
                [_listed(entry) for entry in seg.unique_objects()],
                seg.num_named_objects(), seg.num_unique_objects())

    def op_crash(self) -> None:
        """End this process as a segfault in compiled code would (for the test that a crash
        fails the comparison)."""
        os.kill(os.getpid(), signal.SIGSEGV)

    # -- operations on segments ----------------------------------------------------------------
    def _named(self, kind: str, name: str) -> tuple[type, Any]:
        return TYPES[kind][0], SENTINELS.get(name, name)

    def op_construct(self, kind: str, name: str, value: int, count: int | None) -> int:
        cls, key = self._named(kind, name)
        assert self.segment is not None
        return self.handle_of(self.segment.construct(cls, key, *TYPES[kind][1](value),
                                                     count=count))

    def op_find_or_construct(self, kind: str, name: str, value: int, count: int | None) -> int:
        cls, key = self._named(kind, name)
        assert self.segment is not None
        return self.handle_of(self.segment.find_or_construct(cls, key, *TYPES[kind][1](value),
                                                             count=count))

    def op_find(self, kind: str, name: str) -> tuple[int | None, int, bytes | None]:
        cls, key = self._named(kind, name)
        assert self.segment is not None
        obj, count = self.segment.find(cls, key)
        if obj is None:
            return None, count, None
        return self.handle_of(obj), count, bytes(obj)

    def op_destroy(self, kind: str, name: str) -> bool:
        cls, key = self._named(kind, name)
        assert self.segment is not None
        return bool(self.segment.destroy(cls, key))

    # -- operations on SegmentDicts (made on first use) -------------------------------------
    def _dict(self, name: str) -> Any:
        assert self.segment is not None
        return self.segment.find_or_construct(DICTS[name], name)

    def _dict_key(self, name: str, key: str) -> Any:
        return key.encode() if name == "blobs" else key

    def _dict_value(self, name: str, value: int) -> Any:
        return str(value) if name == "blobs" else value

    def op_dict_set(self, name: str, key: str, value: int) -> None:
        self._dict(name)[self._dict_key(name, key)] = self._dict_value(name, value)

    def op_dict_update(self, name: str, pairs: list[tuple[str, int]]) -> None:
        self._dict(name).update((self._dict_key(name, key), self._dict_value(name, value))
                                for key, value in pairs)

    def op_dict_get(self, name: str, key: str) -> Any:
        return self._dict(name)[self._dict_key(name, key)]

    def op_dict_contains(self, name: str, key: str) -> bool:
        return self._dict_key(name, key) in self._dict(name)

    def op_dict_pop(self, name: str, key: str) -> Any:
        return self._dict(name).pop(self._dict_key(name, key))

    def op_dict_popitem(self, name: str) -> tuple[Any, Any]:
        return tuple(self._dict(name).popitem())

    def op_dict_items(self, name: str) -> tuple[int, list[tuple[Any, Any]]]:
        found = self._dict(name)
        return len(found), list(found.items())

    def op_dict_clear(self, name: str) -> None:
        self._dict(name).clear()

    def op_dict_damage(self, name: str, word: str, value: int) -> None:
        """Overwrite one word of the dict's header with ``value`` (any 64 bits), bypassing the
        journal: what a bit flip or a hostile file does."""
        handle = self.handle_of(self._dict(name)) + 8 * DICT_WORDS[word]
        self.segment.buffer[handle:handle + 8] = value.to_bytes(8, "little")  # type: ignore[union-attr]

    # -- operations on SegmentLists, SegmentVectors and a SegmentString (made on first use) ---
    def _sequence(self, name: str) -> Any:
        assert self.segment is not None
        return self.segment.find_or_construct(SEQUENCES[name], name)

    def _element(self, name: str, value: int) -> Any:
        return str(value) * (value % 5) if name == "texts" else value / 4 if name == "reals" \
            else value

    def op_seq_append(self, name: str, value: int) -> None:
        self._sequence(name).append(self._element(name, value))

    def op_seq_extend(self, name: str, values: list[int]) -> None:
        self._sequence(name).extend(self._element(name, value) for value in values)

    def op_seq_insert(self, name: str, index: int, value: int) -> None:
        self._sequence(name).insert(index, self._element(name, value))

    def op_seq_get(self, name: str, index: int) -> Any:
        return self._sequence(name)[index]

    def op_seq_set(self, name: str, index: int, value: int) -> None:
        self._sequence(name)[index] = self._element(name, value)

    def op_seq_slice(self, name: str, start: int | None, stop: int | None) -> list[Any]:
        return list(self._sequence(name)[start:stop])

    def op_seq_iterate(self, name: str) -> tuple[int, list[Any]]:
        found = self._sequence(name)
        return len(found), list(found)

    def op_seq_pop(self, name: str, index: int) -> Any:
        return self._sequence(name).pop(index)

    def op_seq_delete(self, name: str, index: int) -> None:
        del self._sequence(name)[index]

    def op_seq_count(self, name: str, value: int) -> int:
        return self._sequence(name).count(self._element(name, value))

    def op_seq_clear(self, name: str) -> None:
        self._sequence(name).clear()

    def op_seq_destroy(self, name: str) -> bool:
        assert self.segment is not None
        return bool(self.segment.destroy(SEQUENCES[name], name))

    def op_seq_damage(self, name: str, word: int, value: int) -> None:
        """Overwrite header word ``word`` of a sequence with ``value`` (any 64 bits), bypassing
        the journal (as ``dict_damage``)."""
        handle = self.handle_of(self._sequence(name)) + 8 * word
        self.segment.buffer[handle:handle + 8] = value.to_bytes(8, "little")  # type: ignore[union-attr]

    def _text(self) -> Any:
        assert self.segment is not None
        return self.segment.find_or_construct(SegmentString, "text")

    def op_text_append(self, text: str) -> None:
        self._text().append(text)

    def op_text_assign(self, text: str) -> None:
        self._text().assign(text)

    def op_text_read(self) -> tuple[int, str]:
        text = self._text()
        return len(text), str(text)

    def op_transaction(self, operations: list[tuple[Any, ...]], fail: bool) -> list[Any]:
        """Several operations as one; ``fail`` raises at the end. In a segment with a journal
        (named storage) a transaction that raises rolls back, and the handles it gave are
        forgotten."""
        assert self.segment is not None
        live = list(self.live)
        results = []
        try:
            with self.segment.transaction():
                for name, *args in operations:
                    results.append(getattr(self, f"op_{name}")(*args))
                if fail:
                    raise Abort("the operation asked the transaction to fail")
        except Exception:
            if self.segment.storage.named:
                self.live = live
            raise
        return results


def _listed(entry: Any) -> tuple[str, int, int, str]:
    return entry.name, entry.handle, entry.count, entry.type_id


def _step(run: Run, operation: tuple[Any, ...]) -> tuple[Any, str | None, bytes]:
    name, *args = operation
    result, raised = None, None
    try:
        result = getattr(run, f"op_{name}")(*args)
    except Exception as exc:  # the type is the answer; the test compares it across builds
        raised = type(exc).__name__
        del exc
    return result, raised, hashlib.blake2b(run.buffer, digest_size=16).digest()


def _run(setup: dict[str, Any], operations: list[tuple[Any, ...]], scratch: Path, skew: int,
         want_bytes: bool) -> Any:
    run = Run(setup, scratch, skew)
    try:
        steps = [_step(run, operation) for operation in operations]
        return bytes(run.buffer) if want_bytes else steps
    finally:
        run.close()


def _hello() -> dict[str, Any]:
    """Which build this process runs: the segalloc modules loaded compiled (all plugins and
    the segment layer imported first)."""
    for cls in plugins().algorithms.values():
        assert cls.__module__ in sys.modules
    loaded = sorted(name for name, module in sys.modules.items()
                    if name.startswith("segalloc") and segalloc.is_compiled(module))
    return {"pure_python": segalloc.PURE_PYTHON, "compiled": loaded, "pid": os.getpid()}


def serve(connection: Connection, skew: int) -> None:
    """Answer requests until the test closes its end: ``("hello",)``, ``("run", setup,
    operations)``, ``("bytes", setup, operations)``. A failure of the worker itself (not of
    an operation) answers ``("error", traceback)``."""
    scratch = Path(tempfile.mkdtemp(prefix="segalloc-differential-"))
    try:
        while True:
            try:
                request = connection.recv()
            except EOFError:
                return
            try:
                if request[0] == "hello":
                    reply: Any = ("ok", _hello())
                else:
                    kind, setup, operations = request
                    reply = ("ok", _run(setup, operations, scratch, skew, kind == "bytes"))
            except Exception:  # reported to the test, which fails naming it
                reply = ("error", traceback.format_exc())
            connection.send(reply)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fd", type=int, help="the connection's file descriptor")
    parser.add_argument("--skew", type=int, default=0, help="bytes added to every allocate")
    args = parser.parse_args()
    serve(Connection(args.fd), args.skew)


if __name__ == "__main__":
    main()
