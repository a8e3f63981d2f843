"""Hostile and corrupt segments: damaged images of real segments open, check and work, or are
refused with ``InvalidSegment`` / ``SegmentCorrupt`` naming the damage; never a hang, never an
unrelated exception.

For every algorithm shipped with segalloc, one real segment (raw allocations, named, unique and
array objects of ctypes types, and one of each container) is imaged; hypothesis then damages
the image (bit flips anywhere or in metadata, hostile words in block headers and links, cycles
planted in free lists, sizes pointing outside the segment, zeroed pages and ranges, truncation,
a header that claims another algorithm with a valid checksum). Each damaged image is opened,
verified, inspected read-only (``segalloc.bench.inspect``) and used (every known name found, the known
blocks sized, expanded, shrunk and freed, new blocks and objects made and destroyed) under a
per-image alarm. The tally of outcomes is printed at the end of the module's tests (``-s`` or
the terminal summary) and the last test asserts it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import functools
import random
import signal
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ctypes import c_double, c_int, c_int64
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segalloc
from segalloc import (
    UNIQUE,
    BadAlloc,
    Command,
    InvalidPointer,
    InvalidSegment,
    Mode,
    NameExists,
    plugins,
)
from segalloc.bench.inspect import inspect
from segalloc.header import HEADER_SIZE, SegmentHeader

#: the algorithms segalloc ships (a third-party plugin's robustness is its own business)
ALGORITHMS = sorted(
    name for name, cls in plugins().algorithms.items() if cls.__module__.startswith("segalloc.algorithms.")
)
SEGMENT_SIZE = 12 * 1024
PAGE = 4096
#: seconds one image may take to open, check and use before it counts as a hang
TIME_BOUND = 2.0
#: damaged images per (algorithm, damage kind): 9 kinds x 3 algorithms x 500 = 13,500
EXAMPLES = 500
#: what a damaged segment may raise (besides TypeError from ``find`` on a damaged type id)
ALLOWED = (InvalidSegment, InvalidPointer, BadAlloc, NameExists)

try:
    from segalloc.containers import SegmentDict, SegmentList, SegmentString, SegmentVector
except ImportError:  # the containers are optional for this campaign
    CONTAINERS: list[tuple[type, str, Any]] = []
else:
    CONTAINERS = [
        (SegmentList[c_int], "list", [1, 2, 3, 4]),
        (SegmentVector[c_int64], "vector", list(range(24))),
        (SegmentString, "string", "a string in the segment"),
        (SegmentDict[bytes, c_int], "dict", {b"one": 1, b"two": 2, b"three": 3}),
    ]


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int64)]


# ------------------------------------------------------------------------------------------
# The specimens: one real segment per algorithm, imaged, with what it holds
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Specimen:
    """A real segment's bytes and what is known to be in it."""

    algorithm: str
    image: bytes
    header: SegmentHeader
    #: (type, name) of every object constructed under a name or UNIQUE
    objects: tuple[tuple[type, Any], ...]
    #: live raw allocations
    handles: tuple[int, ...]
    #: byte offsets of the free blocks, as ``free_blocks()`` gives them
    free: tuple[int, ...]
    #: 8-aligned byte offsets of metadata words: the algorithm's header, every block's header
    #: and links, the named-object index and object headers
    metadata: tuple[int, ...]


def _metadata_words(seg: Any, free: list[tuple[int, int]], index_root: int) -> tuple[int, ...]:
    words = set(range(HEADER_SIZE, HEADER_SIZE + 512, 8))
    for handle, _ in seg.algorithm.allocated_blocks():
        words.update(range(handle - 16, handle + 8, 8))
    for offset, _ in free:
        words.update(range(offset - 8, offset + 56, 8))
    words.update(range(index_root, index_root + 40, 8))
    for obj in seg.named_objects() + seg.unique_objects():
        words.update(range(obj.handle - 48, obj.handle + 8, 8))
    return tuple(sorted(w for w in words if 0 <= w <= SEGMENT_SIZE - 8))


@functools.cache
def specimen(algorithm: str) -> Specimen:
    """Build the algorithm's specimen once: allocations with holes, objects, containers."""
    buf = bytearray(SEGMENT_SIZE)
    seg = segalloc.ManagedExternalBuffer(Mode.CREATE_ONLY, buf, algorithm=algorithm)
    rng = random.Random(algorithm)
    handles = []
    for n in range(36):
        handle = seg.allocate(rng.randrange(1, 160))
        seg.view(handle, 1)[0] = n
        handles.append(handle)
    objects: list[tuple[type, Any]] = [(c_int, "int"), (c_double, "doubles"), (Point, "point"),
                                       (Point, UNIQUE)]
    seg.construct(c_int, "int", 7)
    seg.construct(c_double, "doubles", 1.5, count=12)
    seg.construct(Point, "point", 1, 2)
    seg.construct(Point, UNIQUE, 3, 4)
    for cls, name, initial in CONTAINERS:
        seg.construct(cls, name, initial)
        objects.append((cls, name))
    for handle in handles[::3]:
        seg.deallocate(handle)
    seg.construct(c_int, "late", 9)  # lands in a hole
    objects.append((c_int, "late"))
    assert seg.check_sanity()
    free = list(seg.algorithm.free_blocks())
    header = SegmentHeader.read(seg.buffer, SEGMENT_SIZE)
    metadata = _metadata_words(seg, free, header.index_offset)
    live = tuple(h for n, h in enumerate(handles) if n % 3)
    seg.close()
    return Specimen(algorithm, bytes(buf), header, tuple(objects), live,
                    tuple(offset for offset, _ in free), metadata)


# ------------------------------------------------------------------------------------------
# Damage: each strategy draws a damaged image of a specimen
# ------------------------------------------------------------------------------------------


class Damaged(bytearray):
    """A damaged image whose repr names only what differs from the specimen (so a failing
    example reads as a short list of changes, not kilobytes of bytes)."""

    def __init__(self, base: bytes) -> None:
        super().__init__(base)
        self.base = base

    def __repr__(self) -> str:
        changed = [at for at in range(min(len(self), len(self.base))) if self[at] != self.base[at]]
        shown = ", ".join(f"{at}: {self.base[at]:#04x}->{self[at]:#04x}" for at in changed[:24])
        more = f" and {len(changed) - 24} more" if len(changed) > 24 else ""
        return f"Damaged(len={len(self)} of {len(self.base)}; bytes {{{shown}}}{more})"


def _hostile_values(at: int, size: int) -> st.SearchStrategy[int]:
    """Words that break assumptions: self links (byte and word), neighbours, the segment end
    and beyond, sign and top bits, and anything."""
    return st.sampled_from([
        0, 1, at, at >> 3, at - 16, at + 16, (at >> 3) - 1, size, size - 8, size + 16,
        size >> 3, 2**31, 2**32, 2**63, 2**64 - 1, 2**64 - 16,
    ]) | st.integers(0, size) | st.integers(0, 2**64 - 1)


def _put_word(image: bytearray, at: int, value: int) -> None:
    struct.pack_into("<Q", image, at, value % 2**64)


@st.composite
def bit_flips(draw: Any, spec: Specimen) -> Damaged:
    """1-16 bits flipped anywhere in the segment."""
    image = Damaged(spec.image)
    for bit in draw(st.lists(st.integers(0, 8 * len(image) - 1), min_size=1, max_size=16)):
        image[bit >> 3] ^= 1 << (bit & 7)
    return image


@st.composite
def metadata_flips(draw: Any, spec: Specimen) -> Damaged:
    """1-6 bits flipped in metadata words."""
    image = Damaged(spec.image)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.sampled_from(spec.metadata))
        image[at + draw(st.integers(0, 7))] ^= 1 << draw(st.integers(0, 7))
    return image


@st.composite
def hostile_words(draw: Any, spec: Specimen) -> Damaged:
    """1-3 metadata words (sizes, links, counters) overwritten with hostile values: sizes
    pointing outside the segment, links to nowhere or to themselves."""
    image = Damaged(spec.image)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(spec.metadata))
        _put_word(image, at, draw(_hostile_values(at, len(image))))
    return image


@st.composite
def stray_words(draw: Any, spec: Specimen) -> Damaged:
    """1-3 words anywhere (payloads too: container nodes, object headers) overwritten with
    hostile values."""
    image = Damaged(spec.image)
    for _ in range(draw(st.integers(1, 3))):
        at = 8 * draw(st.integers(0, len(image) // 8 - 1))
        _put_word(image, at, draw(_hostile_values(at, len(image))))
    return image


@st.composite
def free_list_cycles(draw: Any, spec: Specimen) -> Damaged:
    """A link word of a free block pointed back at itself, at another free block, or at its
    own word (as byte offset or word index, the two ways the algorithms link)."""
    image = Damaged(spec.image)
    for _ in range(draw(st.integers(1, 2))):
        block = draw(st.sampled_from(spec.free))
        at = block + 8 * draw(st.integers(0, 6))
        target = draw(st.sampled_from(spec.free))
        value = draw(st.sampled_from([block, block >> 3, target, target >> 3, at, at >> 3,
                                      (block >> 3) - 1, (target >> 3) - 1]))
        _put_word(image, at, value)
    return image


@st.composite
def zeroed(draw: Any, spec: Specimen) -> Damaged:
    """A whole 4 KiB page, or a range of any length anywhere, zeroed."""
    image = Damaged(spec.image)
    if draw(st.booleans()):
        start = PAGE * draw(st.integers(0, len(image) // PAGE - 1))
        length = PAGE
    else:
        start = draw(st.integers(0, len(image) - 1))
        length = draw(st.integers(1, len(image) - start))
    image[start : start + length] = bytes(length)
    return image


@st.composite
def truncated(draw: Any, spec: Specimen) -> Damaged:
    """The image cut short (a truncated file), or the header's size rewritten to match the
    cut, so the segment opens on a region that ends early."""
    cut = draw(st.integers(1, len(spec.image) - 1))
    image = Damaged(spec.image)
    del image[cut:]
    if cut >= HEADER_SIZE and draw(st.booleans()):
        dataclasses.replace(spec.header, total_size=cut).write(memoryview(image))
    return image


@st.composite
def header_rewrites(draw: Any, spec: Specimen) -> Damaged:
    """A header with a valid checksum that claims another algorithm (or layout version, index
    offset), plus optional metadata damage."""
    image = Damaged(spec.image)
    header = spec.header
    algorithm = draw(st.sampled_from(sorted(plugins().algorithms)))
    layout = plugins().algorithms[algorithm].layout_version
    layout = draw(st.sampled_from([layout, layout + 1]))
    index = draw(st.sampled_from([header.index_offset, HEADER_SIZE, len(image) - 8])
                 | st.integers(HEADER_SIZE, len(image) - 1))
    dataclasses.replace(header, algorithm=algorithm, layout_version=layout,
                        index_offset=index).write(memoryview(image))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.sampled_from(spec.metadata))
        image[at + draw(st.integers(0, 7))] ^= 1 << draw(st.integers(0, 7))
    return image


DAMAGES: dict[str, Callable[[Specimen], st.SearchStrategy[Damaged]]] = {
    "bit_flips": bit_flips,
    "metadata_flips": metadata_flips,
    "hostile_words": hostile_words,
    "stray_words": stray_words,
    "free_list_cycles": free_list_cycles,
    "zeroed": zeroed,
    "truncated": truncated,
    "header_rewrites": header_rewrites,
}


@st.composite
def combined(draw: Any, spec: Specimen) -> Damaged:
    """Two kinds of damage on top of each other (truncation last)."""
    first, second = draw(st.lists(st.sampled_from(sorted(set(DAMAGES) - {"truncated"})),
                                  min_size=2, max_size=2))
    image = draw(DAMAGES[first](spec))
    twice = draw(DAMAGES[second](dataclasses.replace(spec, image=bytes(image))))
    twice.base = spec.image
    return twice


DAMAGES["combined"] = combined

# ------------------------------------------------------------------------------------------
# Running one image: open, check, inspect, use, under a time bound, tallying the outcome
# ------------------------------------------------------------------------------------------

#: outcome -> images, over the whole module
TALLY: collections.Counter[str] = collections.Counter()
#: the (algorithm, damage) campaigns that ran in this session
CAMPAIGNS_RUN: set[tuple[str, str]] = set()


class Hang(BaseException):
    """An image took longer than TIME_BOUND (a BaseException, so no ``except Exception``
    in the code under test swallows it)."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(step: Callable[..., Any], *args: Any) -> Any:
    """``step(*args)`` on a damaged segment; an allowed refusal is tallied, not raised."""
    try:
        return step(*args)
    except ALLOWED as exc:
        TALLY[f"use refused: {type(exc).__name__}"] += 1
        return None


def type_checked(call: Callable[..., Any], *args: Any) -> Any:
    """``find`` or ``destroy`` by name; a TypeError is allowed only as their own refusal of a
    type that does not match the stored one (a damaged type identity)."""
    try:
        return call(*args)
    except TypeError as exc:
        assert "holds another type" in str(exc), f"{call.__name__} raised an unrelated TypeError: {exc}"
        TALLY["use refused: TypeError (type mismatch)"] += 1
        return None


def find(seg: Any, cls: type, name: Any) -> Any:
    """The object ``find`` gives (None when absent or refused)."""
    found = type_checked(seg.find, cls, name)
    return None if found is None else found[0]


def read_object(obj: Any) -> Any:
    """Every element a found object has (containers walk their nodes)."""
    if isinstance(obj, ctypes.Array):
        return list(obj)
    if isinstance(obj, ctypes.Structure):
        return obj.x, obj.y
    if hasattr(obj, "items"):
        return len(obj), list(obj.items())
    if isinstance(obj, segalloc.SegmentString):
        return len(obj), str(obj)
    if hasattr(obj, "__len__"):
        return len(obj), list(obj)
    return obj.value


def use(seg: Any, spec: Specimen) -> None:
    """Everything a program would do with a segment it opened."""
    for cls, name in spec.objects:
        obj = attempt(find, seg, cls, name)
        if obj is not None:
            attempt(read_object, obj)
    nothrow = Command.NOTHROW
    for handle in spec.handles[:8]:
        attempt(seg.usable_size, handle)
        attempt(seg.allocation_command, Command.EXPAND_FWD | nothrow, 96, 160, handle)
        attempt(seg.allocation_command, Command.SHRINK_IN_PLACE | nothrow, 48, 16, handle)
        attempt(seg.allocation_command, Command.EXPAND_BWD | Command.ALLOCATE_NEW | nothrow, 64,
                256, handle)
    attempt(seg.deallocate_many, spec.handles[8:12])
    for handle in spec.handles[12:16]:
        attempt(seg.deallocate, handle)
    made = [attempt(seg.allocate, size) for size in (8, 100, 700, 3000)]
    made.append(attempt(seg.allocate_aligned, 200, 256))
    made.extend(attempt(seg.allocate_many, 48, 6) or [])
    for handle in made:
        if handle is not None:
            attempt(seg.deallocate, handle)
    attempt(seg.construct, c_int, "made after damage", 5)
    attempt(type_checked, seg.destroy, c_int, "int")
    attempt(seg.reserve_named_objects, 32)
    for step in (seg.named_objects, seg.unique_objects, seg.free_blocks, seg.get_free_memory,
                 seg.all_memory_deallocated, seg.zero_free_memory):
        attempt(step)


def run_image(image: Damaged, spec: Specimen) -> None:
    """Open, check, inspect read-only and use one damaged image; tally what happened."""
    TALLY["tried"] += 1
    try:
        with time_bound(TIME_BOUND):
            try:
                seg = segalloc.ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(image))
            except ALLOWED as exc:
                TALLY[f"open refused: {type(exc).__name__}"] += 1
                return
            TALLY["opened"] += 1
            try:
                seg.verify()
                TALLY["verified sane"] += 1
            except InvalidSegment as exc:
                TALLY[f"verify refused: {type(exc).__name__}"] += 1
            try:
                # read-only, a damaged journal word reads as a rollback it may not make
                view = segalloc.ManagedExternalBuffer(Mode.OPEN_READ_ONLY, bytes(image))
            except InvalidSegment as exc:
                TALLY[f"read-only open refused: {type(exc).__name__}"] += 1
            else:
                with view:
                    inspect(view)
            use(seg, spec)
            seg.check_sanity()
            seg.close()
    except Hang:
        TALLY["hangs"] += 1
        raise
    except BaseException:
        TALLY["unexpected exceptions"] += 1
        raise


@pytest.fixture(scope="module", autouse=True)
def report_tally(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the tally once the module's tests have run."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\ncorruption campaign:")
        for key in sorted(set(TALLY) | {"hangs", "unexpected exceptions"}):
            print(f"  {TALLY[key]:7d}  {key}")


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_damaged_image_works_or_is_refused(algorithm: str, damage: str, data: Any) -> None:
    CAMPAIGNS_RUN.add((algorithm, damage))
    spec = specimen(algorithm)
    image = data.draw(DAMAGES[damage](spec), label=damage)
    run_image(image, spec)


def test_undamaged_specimens_open_and_hold_everything() -> None:
    """The baseline: every specimen opens sane and every object and block is found."""
    for algorithm in ALGORITHMS:
        spec = specimen(algorithm)
        seg = segalloc.ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(spec.image))
        assert seg.check_sanity()
        for cls, name in spec.objects:
            assert seg.find(cls, name)[0] is not None, (algorithm, name)
        for handle in spec.handles:
            assert seg.usable_size(handle) > 0
        seg.close()


def test_campaign_tally() -> None:
    """Runs last: no hang and no unexpected exception; when the whole campaign ran (not a
    ``-k`` selection), it tried at least 10,000 damaged images and opened some of them."""
    assert TALLY["hangs"] == 0 and TALLY["unexpected exceptions"] == 0
    if CAMPAIGNS_RUN == {(a, d) for a in ALGORITHMS for d in DAMAGES}:
        assert TALLY["tried"] >= 10_000, TALLY
        assert 0 < TALLY["opened"] < TALLY["tried"], TALLY
