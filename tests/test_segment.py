"""The segment manager on every algorithm: header validation, bad input, named objects."""

from __future__ import annotations

import ctypes
import gzip
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from segalloc import (
    ANONYMOUS,
    UNIQUE,
    BadAlloc,
    Command,
    InstanceType,
    InvalidPointer,
    InvalidSegment,
    ManagedExternalBuffer,
    ManagedHeapMemory,
    Mode,
    NameExists,
    ReadOnlySegment,
    Segment,
    SegmentCorrupt,
    plugins,
)
from segalloc.header import HEADER_SIZE, SegmentHeader

ALGORITHMS = sorted(plugins().algorithms)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int64), ("y", ctypes.c_double)]


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def seg(algorithm: str) -> ManagedHeapMemory:
    segment = ManagedHeapMemory(65536, algorithm=algorithm)
    yield segment
    segment.close()


def unchanged(seg: ManagedHeapMemory, call: object, error: type[BaseException]) -> None:
    """``call()`` raises ``error`` and leaves every byte of the segment as it was."""
    before = bytes(seg.buffer)
    with pytest.raises(error):
        call()  # type: ignore[operator]
    assert bytes(seg.buffer) == before


# -- bad input ------------------------------------------------------------------------------
def test_double_free_raises_and_changes_nothing(seg: ManagedHeapMemory) -> None:
    handle = seg.allocate(100)
    seg.allocate(100)
    seg.deallocate(handle)
    unchanged(seg, lambda: seg.deallocate(handle), InvalidPointer)


def test_interior_and_outside_offsets_raise(seg: ManagedHeapMemory) -> None:
    handle = seg.allocate(200)
    for offset in (handle + 16, handle + 8, handle + 1, 0, 3, seg.get_size(), 2**40):
        unchanged(seg, lambda offset=offset: seg.deallocate(offset), InvalidPointer)
    unchanged(seg, lambda: seg.deallocate(-16), InvalidPointer)
    unchanged(seg, lambda: seg.deallocate("16"), TypeError)  # type: ignore[arg-type]
    unchanged(seg, lambda: seg.usable_size(handle + 16), InvalidPointer)


def test_alignment_must_be_a_power_of_two(seg: ManagedHeapMemory) -> None:
    for alignment in (0, 3, 24, 100, -8):
        unchanged(seg, lambda a=alignment: seg.allocate_aligned(64, a), ValueError)
    unchanged(seg, lambda: seg.allocate_aligned(64, 16.0), TypeError)  # type: ignore[arg-type]


def test_negative_and_absurd_sizes(seg: ManagedHeapMemory) -> None:
    unchanged(seg, lambda: seg.allocate(-1), ValueError)
    unchanged(seg, lambda: seg.allocate(True), TypeError)
    unchanged(seg, lambda: seg.allocate(1.5), TypeError)  # type: ignore[arg-type]
    unchanged(seg, lambda: seg.allocate(2**62), BadAlloc)
    unchanged(seg, lambda: seg.allocate(seg.get_size()), BadAlloc)
    assert seg.allocate(2**62, nothrow=True) is None
    unchanged(seg, lambda: seg.allocate_many([10, 2**62]), BadAlloc)
    assert seg.allocate_many([10, 2**62], nothrow=True) == []


def test_bad_allocation_commands(seg: ManagedHeapMemory) -> None:
    handle = seg.allocate(100)
    unchanged(seg, lambda: seg.allocation_command(Command.EXPAND_FWD, 200, 200), ValueError)
    unchanged(seg, lambda: seg.allocation_command(Command.NOTHROW, 200, 200), ValueError)
    # a shrink to a preferred size above its limit is a failed command, as in Boost
    unchanged(seg, lambda: seg.allocation_command(
        Command.SHRINK_IN_PLACE, 50, 80, handle), BadAlloc)
    assert seg.allocation_command(Command.SHRINK_IN_PLACE | Command.NOTHROW, 50, 80, handle) \
        == (None, 0)
    unchanged(seg, lambda: seg.allocation_command(
        Command.EXPAND_FWD, 200, 200, handle + 16), InvalidPointer)
    assert seg.allocation_command(Command.EXPAND_FWD | Command.NOTHROW, 2**50, 2**50, handle) \
        == (None, 0)


def test_deallocate_many_is_all_or_nothing(seg: ManagedHeapMemory) -> None:
    first, second = seg.allocate(64), seg.allocate(64)
    unchanged(seg, lambda: seg.deallocate_many([first, second + 16]), InvalidPointer)
    unchanged(seg, lambda: seg.deallocate_many([first, first]), InvalidPointer)
    seg.deallocate_many([first, second])
    assert seg.all_memory_deallocated()


def test_segment_too_small(algorithm: str) -> None:
    with pytest.raises(ValueError, match="too small"):
        ManagedHeapMemory(HEADER_SIZE + 8, algorithm=algorithm)
    with pytest.raises(ValueError):
        ManagedHeapMemory(0, algorithm=algorithm)


def test_unknown_algorithm_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="registered: .*"):
        ManagedHeapMemory(65536, algorithm="no_such_algorithm")


# -- opening bytes -----------------------------------------------------------------------------
def test_open_only_on_bytes_that_are_not_a_segment() -> None:
    for junk in (bytearray(4096), bytearray(b"x" * 4096), bytearray(b"SEGALLOC" + bytes(100))):
        before = bytes(junk)
        with pytest.raises(InvalidSegment):
            ManagedExternalBuffer(Mode.OPEN_ONLY, junk)
        assert bytes(junk) == before


def _reheader(buf: bytearray, **changes: object) -> None:
    header = SegmentHeader.read(memoryview(buf), len(buf))
    fields = {**header.__dict__, **changes}
    SegmentHeader(**fields).write(memoryview(buf))  # type: ignore[arg-type]


def test_open_only_on_a_segment_of_an_algorithm_not_installed(seg: ManagedHeapMemory) -> None:
    copy = bytearray(seg.buffer)
    _reheader(copy, algorithm="quantum_fit")
    with pytest.raises(InvalidSegment, match="quantum_fit.*not installed"):
        ManagedExternalBuffer(Mode.OPEN_ONLY, copy)


def test_header_damage_is_named(seg: ManagedHeapMemory) -> None:
    good = bytearray(seg.buffer)
    checks = {
        "checksum": lambda b: b.__setitem__(20, b[20] ^ 0xFF),
        "version": lambda b: struct.pack_into("<I", b, 8, 99),
        "magic": lambda b: b.__setitem__(0, 0),
    }
    for word, damage in checks.items():
        copy = bytearray(good)
        damage(copy)
        with pytest.raises(InvalidSegment, match=word):
            ManagedExternalBuffer(Mode.OPEN_ONLY, copy)
    with pytest.raises(InvalidSegment, match="backing object"):
        ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(good) + bytearray(64))
    layout = bytearray(good)
    _reheader(layout, layout_version=77)
    with pytest.raises(InvalidSegment, match="layout version 77"):
        ManagedExternalBuffer(Mode.OPEN_ONLY, layout)


def test_a_format_1_segment_is_refused_naming_its_version() -> None:
    """A segment an earlier segalloc wrote (format 1: type ids with module paths, which this
    one cannot match) is refused whole, its bytes untouched, rather than opened half-readable."""
    golden = Path(__file__).with_name("golden") / "format1-segment.bin.gz"
    image = bytearray(gzip.decompress(golden.read_bytes()))
    assert struct.unpack_from("<I", image, 8) == (1,) and b"ctypes.c_int/4" in image
    before = bytes(image)
    with pytest.raises(InvalidSegment, match=r"format version 1 \(type identities with module "
                                             r"paths\).*reads format version 2"):
        ManagedExternalBuffer(Mode.OPEN_ONLY, image)
    assert bytes(image) == before


def test_a_byte_copy_is_the_same_segment(seg: ManagedHeapMemory, algorithm: str) -> None:
    handle = seg.allocate(500)
    seg.view(handle, 500)[:] = bytes(range(250)) * 2
    seg.construct(Point, "origin", 3, 4.5)
    copy = ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(seg.buffer))
    assert copy.algorithm.name == algorithm
    assert bytes(copy.view(handle, 500)) == bytes(range(250)) * 2
    point, count = copy.find(Point, "origin")
    assert (point.x, point.y, count) == (3, 4.5, 1)
    assert copy.get_free_memory() == seg.get_free_memory()
    copy.deallocate(handle)
    assert copy.check_sanity()


def test_read_only_refuses_writes(seg: ManagedHeapMemory) -> None:
    seg.construct(ctypes.c_int, "n", 5)
    frozen = bytes(seg.buffer)
    ro = ManagedExternalBuffer(Mode.OPEN_READ_ONLY, frozen)
    assert ro.find(ctypes.c_int, "n")[0].value == 5
    for write in (lambda: ro.allocate(10), lambda: ro.construct(ctypes.c_int, "m"),
                  lambda: ro.destroy(ctypes.c_int, "n"), lambda: ro.zero_free_memory()):
        with pytest.raises(ReadOnlySegment):
            write()
    assert bytes(ro.buffer) == frozen


def test_copy_on_write_leaves_the_callers_buffer_alone(seg: ManagedHeapMemory) -> None:
    seg.construct(ctypes.c_int, "n", 5)
    original = bytearray(seg.buffer)
    snapshot = bytes(original)
    cow = ManagedExternalBuffer(Mode.OPEN_COPY_ON_WRITE, original)
    cow.destroy(ctypes.c_int, "n")
    cow.construct(ctypes.c_int, "m", 6)
    assert cow.find(ctypes.c_int, "n") == (None, 0)
    assert bytes(original) == snapshot


# -- named, unique and anonymous objects ----------------------------------------------------
def test_instance_name_type_length(seg: ManagedHeapMemory) -> None:
    """Scenario 2 of the seed, on every algorithm."""
    seg.destroy_ptr(seg.construct(Point, "warm-up"))  # allocates the index's bucket table
    before = seg.get_free_memory()
    named = seg.construct(Point, "Object name", count=1)
    unique = seg.construct(Point, UNIQUE, count=2)
    anonymous = seg.construct(Point, ANONYMOUS, count=3)
    assert seg.get_instance_name(named) == "Object name"
    assert seg.get_instance_name(unique) == Point.__qualname__  # no module: spawn children agree
    assert seg.get_instance_name(anonymous) is None
    assert [seg.get_instance_type(o) for o in (named, unique, anonymous)] == [
        InstanceType.NAMED, InstanceType.UNIQUE, InstanceType.ANONYMOUS]
    assert [seg.get_instance_length(o) for o in (named, unique, anonymous)] == [1, 2, 3]
    assert (seg.num_named_objects(), seg.num_unique_objects()) == (1, 1)
    for obj in (named, unique, anonymous):
        seg.destroy_ptr(obj)
    assert seg.get_free_memory() == before
    assert seg.all_memory_deallocated()


def test_objects_live_in_the_segment(seg: ManagedHeapMemory) -> None:
    point = seg.construct(Point, "p", 1, 2.0)
    point.x = 42
    again, _ = seg.find(Point, "p")
    assert again.x == 42
    handle = seg.get_handle_from_address(point)
    assert bytes(seg.view(handle, 8)) == (42).to_bytes(8, "little")
    assert seg.get_object_from_handle(Point, handle).y == 2.0
    assert seg.get_address_from_handle(handle) == ctypes.addressof(point)


def test_unicode_names_and_arrays(seg: ManagedHeapMemory) -> None:
    names = ["我的列表", "Ωμέγα", "emoji 🦀", "a" * 300, "tab\tand\nnewline"]
    for i, name in enumerate(names):
        arr = seg.construct(ctypes.c_int32, name, i, count=i + 1)
        assert list(arr) == [i] * (i + 1)
    assert sorted(o.name for o in seg.named_objects()) == sorted(names)
    for i, name in enumerate(names):
        arr, count = seg.find(ctypes.c_int32, name)
        assert count == i + 1 and list(arr) == [i] * (i + 1)
    copy = ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(seg.buffer))
    assert copy.find(ctypes.c_int32, "我的列表")[1] == 1
    for name in names:
        assert seg.destroy(ctypes.c_int32, name)
    assert not seg.destroy(ctypes.c_int32, names[0])
    assert seg.all_memory_deallocated()


def test_find_checks_the_type(seg: ManagedHeapMemory) -> None:
    seg.construct(ctypes.c_int, "n", 7)
    with pytest.raises(TypeError, match="c_int"):
        seg.find(ctypes.c_double, "n")
    with pytest.raises(TypeError):
        seg.destroy(Point, "n")
    with pytest.raises(TypeError):
        seg.construct(int, "x")
    assert seg.find(ctypes.c_int, "n")[0].value == 7


def test_name_collisions_and_find_or_construct(seg: ManagedHeapMemory) -> None:
    seg.construct(ctypes.c_int, "n", 1)
    before = bytes(seg.buffer)
    with pytest.raises(NameExists):
        seg.construct(ctypes.c_int, "n", 2)
    assert bytes(seg.buffer) == before
    assert seg.find_or_construct(ctypes.c_int, "n", 9).value == 1
    assert seg.find_or_construct(ctypes.c_int, "m", 9).value == 9
    seg.construct(ctypes.c_int, UNIQUE, 3)
    with pytest.raises(NameExists):
        seg.construct(ctypes.c_int, UNIQUE)
    assert seg.find(ctypes.c_int, UNIQUE)[0].value == 3
    for bad in ("", 5, None, b"bytes"):
        with pytest.raises((TypeError, ValueError)):
            seg.construct(ctypes.c_int, bad)


def test_constructor_failure_leaves_nothing_behind(seg: ManagedHeapMemory) -> None:
    free = seg.get_free_memory()
    with pytest.raises(TypeError):
        seg.construct(Point, "p", "not a number")
    assert seg.find(Point, "p") == (None, 0) and seg.get_free_memory() == free
    with pytest.raises(BadAlloc):
        seg.construct(ctypes.c_char, "huge", count=10**6)
    assert seg.get_free_memory() == free and seg.check_sanity()


def test_many_objects_and_reserve(seg: ManagedHeapMemory) -> None:
    seg.reserve_named_objects(100)
    for i in range(300):
        seg.construct(ctypes.c_int, f"obj{i}", i)
    assert seg.num_named_objects() == 300
    assert all(seg.find(ctypes.c_int, f"obj{i}")[0].value == i for i in range(300))
    for i in range(0, 300, 2):
        seg.destroy(ctypes.c_int, f"obj{i}")
    assert {o.name for o in seg.named_objects()} == {f"obj{i}" for i in range(1, 300, 2)}
    assert seg.check_sanity()


def test_destroy_ptr_rejects_foreign_objects(seg: ManagedHeapMemory, algorithm: str) -> None:
    other = ManagedHeapMemory(65536, algorithm=algorithm)
    foreign = other.construct(ctypes.c_int, "x")
    with pytest.raises(InvalidPointer):
        seg.destroy_ptr(foreign)
    raw = seg.get_object_from_handle(ctypes.c_int, seg.allocate(16))
    with pytest.raises(InvalidPointer):
        seg.destroy_ptr(raw)
    with pytest.raises(InvalidPointer):
        seg.destroy_ptr(ctypes.c_int(3))
    other.close()


def test_named_index_cycle_is_reported_not_hung(seg: ManagedHeapMemory) -> None:
    for i in range(4):
        seg.construct(ctypes.c_int, f"o{i}")
    entry = seg.named_objects()[0].handle - 48
    struct.pack_into("<Q", seg.buffer, entry, entry)  # the entry's chain points at itself
    with pytest.raises(SegmentCorrupt):
        seg.verify()
    assert not seg.check_sanity()


# -- growing ------------------------------------------------------------------------------
def test_heap_grow_keeps_handles_and_objects(seg: ManagedHeapMemory) -> None:
    seg.construct(ctypes.c_int, "n", 11)
    handle = seg.allocate(1000)
    seg.view(handle, 4)[:] = b"abcd"
    generation = seg.generation
    seg.grow(10000)
    assert seg.generation == generation + 1
    assert seg.get_size() == 65536 + 10000
    assert seg.find(ctypes.c_int, "n")[0].value == 11
    assert bytes(seg.view(handle, 4)) == b"abcd"
    assert seg.allocate(60000) is not None
    assert seg.check_sanity()


def test_heap_shrink_to_fit_keeps_objects(seg: ManagedHeapMemory) -> None:
    seg.construct(ctypes.c_int, "n", 11)
    new_size = seg.shrink_to_fit()
    assert new_size == seg.get_size() < 4096
    assert seg.find(ctypes.c_int, "n")[0].value == 11
    assert seg.check_sanity()
    copy = ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(seg.buffer))
    assert copy.find(ctypes.c_int, "n")[0].value == 11


def test_external_buffers_of_any_kind(algorithm: str) -> None:
    for buffer in (bytearray(8192), (ctypes.c_char * 8192)(), (ctypes.c_int64 * 1024)()):
        seg = ManagedExternalBuffer(Mode.CREATE_ONLY, buffer, algorithm=algorithm)
        seg.construct(ctypes.c_int, "n", 1)
        again = ManagedExternalBuffer(Mode.OPEN_ONLY, buffer)
        assert again.find(ctypes.c_int, "n")[0].value == 1
    with pytest.raises(ValueError, match="read-only"):
        ManagedExternalBuffer(Mode.CREATE_ONLY, bytes(4096), algorithm=algorithm)
    with pytest.raises(TypeError):
        ManagedExternalBuffer(Mode.CREATE_ONLY, [0] * 100, algorithm=algorithm)
    with pytest.raises(TypeError, match="cannot grow"):
        ManagedExternalBuffer(Mode.CREATE_ONLY, bytearray(8192), algorithm=algorithm).grow(10)


def test_a_closed_segment_says_so(algorithm: str) -> None:
    seg = ManagedHeapMemory(4096, algorithm=algorithm)
    handle = seg.allocate(10)
    seg.close()
    seg.close()
    assert seg.closed and "closed" in repr(seg)
    with pytest.raises(ValueError, match="closed"):
        seg.deallocate(handle)


@pytest.mark.parametrize("make", [lambda: ManagedHeapMemory(8192),
                                  lambda: ManagedExternalBuffer(Mode.CREATE_ONLY, bytearray(8192))],
                         ids=["heap", "external"])
def test_close_lets_go_while_a_buffer_of_the_bytes_is_still_exported(
        make: Callable[[], Segment]) -> None:
    seg = make()
    first = bytes(seg.buffer[:8])
    exported = struct.Struct("8s").iter_unpack(seg.buffer)  # holds the buffer while it lives
    seg.close()
    assert seg.closed
    assert next(exported) == (first,)  # the bytes live until the export goes


def test_zero_memory_zeroes_only_what_the_caller_did_not_have(seg: ManagedHeapMemory) -> None:
    dirty = seg.allocate(4000)
    seg.view(dirty, 4000)[:] = b"\xab" * 4000
    seg.deallocate(dirty)
    handle, received = seg.allocation_command(Command.ALLOCATE_NEW | Command.ZERO_MEMORY, 64, 64)
    assert bytes(seg.view(handle, received)) == bytes(received)
    seg.view(handle, received)[:] = b"\x11" * received
    got, grown = seg.allocation_command(
        Command.EXPAND_FWD | Command.ZERO_MEMORY | Command.NOTHROW, 1000, 1000, handle)
    if got is not None:
        assert got == handle
        assert bytes(seg.view(handle, received)) == b"\x11" * received
        assert bytes(seg.view(handle + received, grown - received)) == bytes(grown - received)


@pytest.mark.parametrize("mode", [Mode.OPEN_ONLY, Mode.OPEN_READ_ONLY, Mode.OPEN_COPY_ON_WRITE])
def test_an_empty_buffer_holds_no_segment(mode: Mode) -> None:
    """Found by the fuzzer: opening an empty buffer is an ``InvalidSegment``, as for any bytes
    that hold no segment (not a complaint about the size argument the caller never gave)."""
    with pytest.raises(InvalidSegment, match="empty"):
        ManagedExternalBuffer(mode, bytearray())


#: a 1 MiB segment on each storage only this process reaches (no lock needed between processes)
IN_PROCESS_SEGMENTS = pytest.mark.parametrize("make", [
    lambda algorithm: ManagedHeapMemory(1 << 20, algorithm=algorithm),
    lambda algorithm: ManagedExternalBuffer(Mode.CREATE_ONLY, bytearray(1 << 20), algorithm=algorithm),
], ids=["heap", "external"])


@IN_PROCESS_SEGMENTS
def test_an_allocation_of_another_thread_waits_for_a_transaction_in_progress(
        make: Callable[[str], Segment], algorithm: str) -> None:
    """A heap or external segment's allocate / deallocate skips the lock when no thread is
    inside a section; one that skipped it while another thread's transaction ran would be
    undone by that transaction's rollback (its handle then no block, or freed twice)."""
    seg = make(algorithm)
    free_before = seg.get_free_memory()
    inside, landed = threading.Event(), threading.Event()
    handles: list[int] = []

    def other_thread() -> None:
        inside.wait(10)
        handles.append(seg.allocate(64))
        seg.deallocate(seg.allocate(32))
        landed.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with pytest.raises(RuntimeError), seg.transaction():
        seg.allocate(128)
        inside.set()
        for _ in range(50):  # switch threads again and again inside the transaction
            time.sleep(0.001)
        landed_inside = landed.is_set()
        raise RuntimeError("rolled back")
    thread.join(10)
    assert not landed_inside, "another thread's allocation ran inside the transaction"
    assert len(handles) == 1
    seg.deallocate(handles[0])  # still a block: the rollback did not take it back
    assert seg.get_free_memory() == free_before
    assert seg.check_sanity()


@IN_PROCESS_SEGMENTS
def test_an_allocation_of_another_thread_waits_for_a_reader_holding_the_lock(
        make: Callable[[str], Segment], algorithm: str) -> None:
    """A reader under ``seg.locked()`` records nothing, yet sees one state throughout: another
    thread's allocate / deallocate, which may skip the lock otherwise, waits for it."""
    seg = make(algorithm)
    inside, landed = threading.Event(), threading.Event()

    def other_thread() -> None:
        inside.wait(10)
        seg.deallocate(seg.allocate(64))
        seg.allocate(64)
        landed.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with seg.locked():
        free = seg.get_free_memory()
        inside.set()
        for _ in range(50):  # switch threads again and again while holding the lock
            time.sleep(0.001)
        assert not landed.is_set(), "another thread allocated while a reader held the lock"
        assert seg.get_free_memory() == free
    thread.join(10)
    assert landed.is_set() and seg.get_free_memory() < free
