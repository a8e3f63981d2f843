"""Mapped storage (``backends/mapping.py``): the modes, read-only and copy-on-write views,
creation and its undo, class-level resize, on both named backends; scenario 7 on files."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from segalloc import (
    InvalidSegment,
    LockTimeout,
    ManagedMappedFile,
    ManagedSharedMemory,
    Mode,
    NamedSegment,
    ReadOnlySegment,
    plugins,
)
from segalloc.backends.mapped_file import MappedFileStorage
from segalloc.backends.shared_memory import SHM_DIR
from segalloc.locking import TRAILER

ALGORITHMS = sorted(plugins().algorithms)
SIZE = 65536


class Named:
    """One named backend under test: its managed class, fresh names, and the file behind a name."""

    def __init__(self, cls: type[NamedSegment], directory: Path | None) -> None:
        self.cls = cls
        self._directory = directory
        self._made: list[str] = []

    def new_name(self) -> str:
        """A name nobody uses (removed again at teardown)."""
        if self._directory is not None:
            return str(self._directory / f"seg-{uuid.uuid4().hex}")
        name = f"segalloc-test-{uuid.uuid4().hex}"
        self._made.append(name)
        return name

    def path(self, name: str) -> str:
        return name if self._directory is not None else os.path.join(SHM_DIR, name)

    def cleanup(self) -> None:
        for name in self._made:
            self.cls.remove(name)


@pytest.fixture(params=["shared_memory", "mapped_file"])
def named(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Named]:
    if request.param == "shared_memory":
        backend = Named(ManagedSharedMemory, None)
    else:
        backend = Named(ManagedMappedFile, tmp_path)
    try:
        yield backend
    finally:
        backend.cleanup()


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def file_bytes(named: Named, name: str) -> bytes:
    with open(named.path(name), "rb") as backing:
        return backing.read()


def make_with_int(named: Named, name: str, algorithm: str | None = None) -> None:
    with named.cls(Mode.CREATE_ONLY, name, SIZE, algorithm=algorithm) as seg:
        seg.construct(ctypes.c_int64, "MyInt", 42)
        seg.flush()


# -- modes ----------------------------------------------------------------------------------
def test_create_only_refuses_an_existing_name(named: Named) -> None:
    name = named.new_name()
    make_with_int(named, name)
    before = file_bytes(named, name)
    with pytest.raises(FileExistsError):
        named.cls(Mode.CREATE_ONLY, name, SIZE)
    assert file_bytes(named, name) == before


def test_open_only_refuses_a_missing_name(named: Named) -> None:
    name = named.new_name()
    with pytest.raises(FileNotFoundError):
        named.cls(Mode.OPEN_ONLY, name)
    assert not os.path.exists(named.path(name))


def test_open_or_create_creates_then_opens(named: Named) -> None:
    name = named.new_name()
    with named.cls(Mode.OPEN_OR_CREATE, name, SIZE) as first:
        assert first.storage.created
        first.construct(ctypes.c_int64, "MyInt", 7)
    with named.cls(Mode.OPEN_OR_CREATE, name, 2 * SIZE) as second:
        assert not second.storage.created
        assert second.get_size() == SIZE
        obj, count = second.find(ctypes.c_int64, "MyInt")
        assert (obj.value, count) == (7, 1)


def test_reopening_finds_objects_and_allocations(named: Named, algorithm: str) -> None:
    name = named.new_name()
    with named.cls(Mode.CREATE_ONLY, name, SIZE, algorithm=algorithm) as seg:
        handle = seg.allocate(300)
        seg.view(handle, 300)[:] = bytes(range(256)) + bytes(44)
        seg.construct(ctypes.c_double, "pi", 3.25, count=3)
        free = seg.get_free_memory()
        seg.flush()
    with named.cls(Mode.OPEN_ONLY, name) as again:
        assert again.algorithm.name == algorithm
        assert bytes(again.view(handle, 300)) == bytes(range(256)) + bytes(44)
        obj, count = again.find(ctypes.c_double, "pi")
        assert list(obj) == [3.25] * 3 and count == 3
        assert again.get_free_memory() == free
        assert again.check_sanity()


def test_the_mode_must_be_a_mode_and_size_only_creates(named: Named) -> None:
    name = named.new_name()
    with pytest.raises(TypeError, match="mode"):
        named.cls("create_only", name, SIZE)
    with pytest.raises(TypeError, match="size"):
        named.cls(Mode.CREATE_ONLY, name)
    with pytest.raises(ValueError, match="size"):
        named.cls(Mode.CREATE_ONLY, name, 0)
    make_with_int(named, name)
    with pytest.raises(ValueError, match="size"):
        named.cls(Mode.OPEN_ONLY, name, SIZE)


# -- read-only and copy-on-write -----------------------------------------------------------
def test_read_only_finds_and_refuses_every_write(named: Named, algorithm: str) -> None:
    name = named.new_name()
    make_with_int(named, name, algorithm)
    before = file_bytes(named, name)
    with named.cls(Mode.OPEN_READ_ONLY, name) as seg:
        assert seg.read_only and seg.buffer.readonly
        obj, count = seg.find(ctypes.c_int64, "MyInt")
        assert (obj.value, count) == (42, 1)
        writes: list[Callable[[], object]] = [
            lambda: seg.allocate(10),
            lambda: seg.construct(ctypes.c_int64, "other", 1),
            lambda: seg.destroy(ctypes.c_int64, "MyInt"),
            lambda: seg.find_or_construct(ctypes.c_int64, "new"),
            lambda: seg.zero_free_memory(),
            lambda: seg.reserve_named_objects(64),
        ]
        for write in writes:
            with pytest.raises(ReadOnlySegment):
                write()
        with pytest.raises(TypeError):
            seg.buffer[0] = 0
        assert seg.check_sanity()
    assert file_bytes(named, name) == before


def test_copy_on_write_sees_its_changes_and_the_object_never_does(
    named: Named, algorithm: str
) -> None:
    name = named.new_name()
    make_with_int(named, name, algorithm)
    before = file_bytes(named, name)
    with named.cls(Mode.OPEN_COPY_ON_WRITE, name) as copy:
        assert not copy.read_only
        assert copy.destroy(ctypes.c_int64, "MyInt")
        copy.construct(ctypes.c_int64, "MyInt2", 9)
        copy.allocate(1000)
        copy.flush()
        assert copy.find(ctypes.c_int64, "MyInt") == (None, 0)
        assert copy.find(ctypes.c_int64, "MyInt2")[0].value == 9
        with named.cls(Mode.OPEN_ONLY, name) as original:
            assert original.find(ctypes.c_int64, "MyInt")[0].value == 42
            assert original.find(ctypes.c_int64, "MyInt2") == (None, 0)
    assert file_bytes(named, name) == before


# -- creation, its undo, and the lock ------------------------------------------------------
def test_a_failed_constructor_leaves_no_object(named: Named) -> None:
    name = named.new_name()
    with pytest.raises(ValueError, match="too small"):
        named.cls(Mode.CREATE_ONLY, name, 64)
    with pytest.raises(ValueError, match="unknown algorithm"):
        named.cls(Mode.OPEN_OR_CREATE, name, SIZE, algorithm="no-such-algorithm")
    assert not os.path.exists(named.path(name))
    make_with_int(named, name)  # the name is free to use


def test_a_full_device_is_an_os_error_at_creation(named: Named) -> None:
    name = named.new_name()
    with pytest.raises(OSError) as caught:
        named.cls(Mode.CREATE_ONLY, name, 1 << 60)
    assert not isinstance(caught.value, FileExistsError)
    assert not os.path.exists(named.path(name))


def test_a_created_object_has_exactly_the_permissions_asked(named: Named) -> None:
    name, other = named.new_name(), named.new_name()
    old_umask = os.umask(0o077)
    try:
        named.cls(Mode.CREATE_ONLY, name, SIZE).close()
        named.cls(Mode.CREATE_ONLY, other, SIZE, permissions=0o640).close()
    finally:
        os.umask(old_umask)
    assert os.stat(named.path(name)).st_mode & 0o777 == 0o600
    assert os.stat(named.path(other)).st_mode & 0o777 == 0o640
    with pytest.raises(ValueError, match="permissions"):
        named.cls(Mode.CREATE_ONLY, named.new_name(), SIZE, permissions=0o1000)


def test_the_creator_holds_the_lock_until_the_segment_is_formatted(named: Named) -> None:
    name = named.new_name()
    storage = named.cls.storage_class.open(Mode.CREATE_ONLY, name, SIZE)
    other = os.open(named.path(name), os.O_RDONLY)  # another open file description: a process
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with named.cls.from_storage(storage) as seg:
            assert seg.check_sanity()
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)


def test_an_empty_object_is_not_a_segment(named: Named, monkeypatch: pytest.MonkeyPatch) -> None:
    name = named.new_name()
    with open(named.path(name), "wb") as backing:
        backing.write(bytes(4096))
    monkeypatch.setattr("segalloc.backends.mapping.FORMAT_WAIT", 0.01)
    with pytest.raises(InvalidSegment, match="not formatted"):
        named.cls(Mode.OPEN_ONLY, name)


def test_bytes_that_are_not_a_segment_give_invalid_segment(named: Named) -> None:
    name = named.new_name()
    with open(named.path(name), "wb") as backing:
        backing.write(b"not a segment at all" * 100)
    with pytest.raises(InvalidSegment, match="magic"):
        named.cls(Mode.OPEN_ONLY, name)
    assert os.path.exists(named.path(name))  # opening never removes


def test_two_segments_on_one_object_share_one_reentrant_lock(named: Named) -> None:
    name = named.new_name()
    with named.cls(Mode.CREATE_ONLY, name, SIZE) as first, named.cls(Mode.OPEN_ONLY, name) as second:
        assert first.storage.lock() is second.storage.lock()
        with first.storage.lock():  # a second open file description would deadlock here
            handle = second.allocate(64)
            with second.storage.lock():
                first.deallocate(handle)
        assert first.check_sanity()


def test_close_is_idempotent_and_tolerates_live_objects(named: Named) -> None:
    name = named.new_name()
    seg = named.cls(Mode.CREATE_ONLY, name, SIZE)
    obj = seg.construct(ctypes.c_int64, "MyInt", 5)
    storage = seg.storage
    seg.close()
    seg.close()
    assert "closed" in repr(storage)
    assert obj.value == 5  # the mapping lives while objects view it
    with pytest.raises(ValueError, match="closed"):
        storage.flush()


def test_repr_says_what_it_is(named: Named) -> None:
    name = named.new_name()
    with named.cls(Mode.CREATE_ONLY, name, SIZE) as seg:
        text = repr(seg.storage)
        assert type(seg.storage).__name__ in text
        assert repr(name) in text and f"size={SIZE}" in text and "CREATE_ONLY" in text


# -- class-level remove and resize ---------------------------------------------------------
def test_remove_says_whether_there_was_an_object(named: Named) -> None:
    name = named.new_name()
    assert not named.cls.remove(name)
    make_with_int(named, name)
    assert named.cls.remove(name)
    assert not os.path.exists(named.path(name))


def test_resize_refuses_an_object_this_process_maps(named: Named) -> None:
    name = named.new_name()
    with named.cls(Mode.CREATE_ONLY, name, SIZE) as seg:
        before = bytes(seg.buffer)
        for change in (lambda: named.cls.grow(name, 4096), lambda: named.cls.shrink_to_fit(name)):
            with pytest.raises(BufferError, match="still mapped"):
                change()
        assert os.stat(named.path(name)).st_size == SIZE + TRAILER  # the lock's trailer after it
        assert bytes(seg.buffer) == before
    named.cls.grow(name, 4096)
    with named.cls(Mode.OPEN_ONLY, name) as seg:
        assert seg.get_size() == SIZE + 4096 and seg.check_sanity()


def test_grow_and_shrink_on_every_algorithm(named: Named, algorithm: str) -> None:
    name = named.new_name()
    make_with_int(named, name, algorithm)
    named.cls.grow(name, SIZE)
    with named.cls(Mode.OPEN_ONLY, name) as seg:
        assert seg.get_size() == 2 * SIZE
        assert seg.find(ctypes.c_int64, "MyInt")[0].value == 42
        assert seg.check_sanity()
    new_size = named.cls.shrink_to_fit(name)
    assert new_size < SIZE and os.stat(named.path(name)).st_size == new_size + TRAILER
    with named.cls(Mode.OPEN_ONLY, name) as seg:
        assert seg.get_size() == new_size
        assert seg.find(ctypes.c_int64, "MyInt")[0].value == 42
        assert seg.check_sanity()


# -- files only ----------------------------------------------------------------------------
def test_a_path_object_names_a_file(tmp_path: Path) -> None:
    path = tmp_path / "segment.bin"
    with ManagedMappedFile(Mode.CREATE_ONLY, path, SIZE) as seg:
        seg.construct(ctypes.c_int64, "MyInt", 1)
    ManagedMappedFile.grow(path, 4096)
    assert path.stat().st_size == SIZE + 4096 + TRAILER
    with pytest.raises(TypeError, match="path"):
        MappedFileStorage.open(Mode.OPEN_ONLY, 17)
    with pytest.raises(ValueError, match="non-empty"):
        MappedFileStorage.open(Mode.OPEN_ONLY, "")


def test_scenario_7_copy_on_write(tmp_path: Path, algorithm: str) -> None:
    """A copy-on-write view changes only itself; its bytes dumped to a file are a segment
    showing the change; the original opened read-only is untouched and refuses writes."""
    original, dumped = tmp_path / "original.bin", tmp_path / "dumped.bin"
    with ManagedMappedFile(Mode.CREATE_ONLY, original, SIZE, algorithm=algorithm) as seg:
        seg.construct(ctypes.c_int, "MyInt", 0)
        seg.flush()
    with ManagedMappedFile(Mode.OPEN_COPY_ON_WRITE, original) as copy:
        assert copy.destroy(ctypes.c_int, "MyInt")
        copy.construct(ctypes.c_int, "MyInt2", 0)
        assert copy.find(ctypes.c_int, "MyInt") == (None, 0)
        assert copy.find(ctypes.c_int, "MyInt2")[1] == 1
        with ManagedMappedFile(Mode.OPEN_ONLY, original) as untouched:
            assert untouched.find(ctypes.c_int, "MyInt")[1] == 1
            assert untouched.find(ctypes.c_int, "MyInt2") == (None, 0)
        dumped.write_bytes(bytes(copy.buffer))
    with ManagedMappedFile(Mode.OPEN_ONLY, dumped) as reopened:
        assert reopened.find(ctypes.c_int, "MyInt") == (None, 0)
        assert reopened.find(ctypes.c_int, "MyInt2")[1] == 1
        assert reopened.check_sanity()
    before = original.read_bytes()
    with ManagedMappedFile(Mode.OPEN_READ_ONLY, original) as read_only:
        assert read_only.find(ctypes.c_int, "MyInt")[1] == 1
        assert read_only.num_named_objects() == 1
        assert read_only.num_unique_objects() == 0
        with pytest.raises(ReadOnlySegment):
            read_only.construct(ctypes.c_int, "MyInt3", 0)
        with pytest.raises(ReadOnlySegment):
            read_only.destroy(ctypes.c_int, "MyInt")
        with pytest.raises(ReadOnlySegment):
            read_only.allocate(16)
    assert original.read_bytes() == before


# -- what is opened: regular files only, owned by us -----------------------------------------
def opens_within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """The exception ``call`` raised (None if none), asserting it returned within ``seconds``
    (in a daemon thread, so a blocking open cannot hang the run)."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"the call still blocks after {seconds} s"
    return outcome[0]


def test_a_fifo_is_refused_without_blocking(named: Named) -> None:
    name = named.new_name()
    os.mkfifo(named.path(name), 0o600)
    try:
        for mode in (Mode.OPEN_READ_ONLY, Mode.OPEN_ONLY, Mode.OPEN_COPY_ON_WRITE):
            error = opens_within(5, lambda mode=mode: named.cls(mode, name))  # type: ignore[misc]
            assert isinstance(error, InvalidSegment) and "FIFO" in str(error)
        error = opens_within(5, lambda: named.cls(Mode.OPEN_OR_CREATE, name, SIZE))
        assert isinstance(error, InvalidSegment) and "not a regular file" in str(error)
        error = opens_within(5, lambda: named.cls.grow(name, 4096))
        assert isinstance(error, InvalidSegment) and "FIFO" in str(error)
    finally:
        os.unlink(named.path(name))


def test_a_device_is_refused() -> None:
    with pytest.raises(InvalidSegment, match="character device, not a regular file"):
        ManagedMappedFile(Mode.OPEN_READ_ONLY, "/dev/zero")


def test_an_object_of_another_user_is_refused_unless_trusted(named: Named) -> None:
    name = named.new_name()
    make_with_int(named, name)
    os.chown(named.path(name), 65534, 65534)
    before = file_bytes(named, name)
    for call in (lambda: named.cls(Mode.OPEN_ONLY, name),
                 lambda: named.cls(Mode.OPEN_OR_CREATE, name, SIZE),  # not silently adopted
                 lambda: named.cls.grow(name, 4096)):
        with pytest.raises(PermissionError, match=r"owned by .*uid 65534.*mode 0o600"):
            call()
    assert file_bytes(named, name) == before
    with named.cls(Mode.OPEN_ONLY, name, trust_foreign=True) as seg:
        assert seg.find(ctypes.c_int64, "MyInt")[0].value == 42
    with named.cls(Mode.OPEN_READ_ONLY, name) as seg:  # a private view: nothing to rewrite
        assert seg.find(ctypes.c_int64, "MyInt")[0].value == 42


def test_an_object_others_may_write_is_refused_unless_allowed(named: Named) -> None:
    name = named.new_name()
    make_with_int(named, name)
    os.chmod(named.path(name), 0o666)
    for call in (lambda: named.cls(Mode.OPEN_ONLY, name),
                 lambda: named.cls(Mode.OPEN_OR_CREATE, name, SIZE)):
        with pytest.raises(PermissionError, match="mode 0o666 lets group write"):
            call()
    with named.cls(Mode.OPEN_ONLY, name, permissions=0o666) as seg:
        assert seg.find(ctypes.c_int64, "MyInt")[0].value == 42
    with named.cls(Mode.OPEN_OR_CREATE, name, SIZE, trust_foreign=True) as seg:
        assert not seg.storage.created
    os.chmod(named.path(name), 0o602)
    with pytest.raises(PermissionError, match="lets others write"):
        named.cls(Mode.OPEN_ONLY, name, permissions=0o660)


# -- the lock: timeouts, and a truncated object ---------------------------------------------
def hold_flock(path: str) -> int:
    """Another open file description holding the flock: to the lock, another process."""
    holder = os.open(path, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    return holder


def test_a_held_lock_times_out_naming_its_holder(named: Named) -> None:
    """Operations wait for the trailer's mutex (held here by another thread), opening and
    resizing for the flock (held by another open file description: to the lock, another
    process)."""
    name = named.new_name()
    make_with_int(named, name)
    with named.cls(Mode.OPEN_ONLY, name, timeout=0.05) as seg:
        assert seg.lock_timeout == 0.05
        held, done = threading.Event(), threading.Event()

        def hold() -> None:
            with seg.locked():
                held.set()
                done.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        holder = hold_flock(named.path(name))
        try:
            assert held.wait(10)
            with pytest.raises(LockTimeout, match=rf"held by pid {os.getpid()} \(thread "
                                                  rf"{thread.native_id}\b"):
                seg.allocate(16)
            seg.lock_timeout = 0
            with pytest.raises(TimeoutError, match="waited 0"):
                seg.find(ctypes.c_int64, "MyInt")
            with pytest.raises(LockTimeout, match=rf"held by pid {os.getpid()} \(from /proc"):
                named.cls(Mode.OPEN_READ_ONLY, name, timeout=0.05)
        finally:
            os.close(holder)
            done.set()
            thread.join()
        assert seg.find(ctypes.c_int64, "MyInt")[0].value == 42  # free again: works
        seg.lock_timeout = None
        assert seg.check_sanity()
    holder = hold_flock(named.path(name))
    try:
        with pytest.raises(LockTimeout):
            named.cls.grow(name, 4096, timeout=0.05)
    finally:
        os.close(holder)
    with pytest.raises(ValueError, match="timeout"):
        named.cls(Mode.OPEN_ONLY, name, timeout=-1)


def test_another_thread_holding_the_lock_times_out(named: Named) -> None:
    name = named.new_name()
    make_with_int(named, name)
    with named.cls(Mode.OPEN_ONLY, name, timeout=0.05) as seg:
        held, done = threading.Event(), threading.Event()

        def hold() -> None:
            with seg.locked():
                held.set()
                done.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        try:
            assert held.wait(10)
            with pytest.raises(LockTimeout, match="another thread of this process"):
                seg.allocate(16)
        finally:
            done.set()
            thread.join()
        seg.deallocate(seg.allocate(16))


def in_fork(work: Callable[[], object]) -> str:
    """Run ``work`` in a forked child: the name of what it raised, "returned", or how it died."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # never returns into pytest
        try:
            work()
            os.write(write_end, b"returned")
        except BaseException as exc:
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    said = os.read(read_end, 4096).decode()
    os.close(read_end)
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return said


@pytest.mark.parametrize("exposure", ["group may write", "owned by another user"])
def test_a_truncated_object_is_an_error_not_sigbus(named: Named, exposure: str) -> None:
    """An object others may write is checked at every operation: a truncation by them is an
    InvalidSegment naming the new size, not the SIGBUS the operation would die of."""
    name = named.new_name()
    named.cls(Mode.CREATE_ONLY, name, 16 * SIZE, permissions=0o660).close()
    if exposure == "owned by another user":
        os.chown(named.path(name), 65534, 65534)
    with named.cls(Mode.OPEN_ONLY, name, permissions=0o660, trust_foreign=True) as seg:
        seg.construct(ctypes.c_int64, "MyInt", 42)
        seg.allocate(8 * SIZE)

        def truncated_then_used() -> None:
            os.truncate(named.path(name), SIZE)  # a hostile peer
            seg.allocate(4 * SIZE)
            seg.verify()

        outcome = in_fork(truncated_then_used)
    assert outcome.startswith("InvalidSegment") and f"truncated to {SIZE} bytes" in outcome


# -- close() and objects kept after it --------------------------------------------------------
def descriptors_of(path: str) -> int:
    target = os.stat(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            info = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino)
    return count


def mapped(path: str) -> bool:
    inode = f" {os.stat(path).st_ino} "
    with open("/proc/self/maps") as maps:
        return any(inode in line for line in maps)


def test_objects_kept_after_close_keep_only_the_mapping(named: Named) -> None:
    """close() gives the lock's descriptor back and this process stops counting as mapping the
    object; a kept object still reads the bytes (the mapping and the one descriptor mmap keeps
    live on) until it goes, and then nothing of the segment is left in the process."""
    name = named.new_name()
    path = named.path(name)
    seg = named.cls(Mode.CREATE_ONLY, name, SIZE)
    obj = seg.construct(ctypes.c_int64, "MyInt", 5)
    seg.close()
    assert obj.value == 5 and mapped(path) and descriptors_of(path) == 1
    named.cls.grow(name, 4096)  # this process no longer counts as mapping it
    assert obj.value == 5  # a grow leaves the old bytes mapped in place
    del obj
    assert not mapped(path) and descriptors_of(path) == 0  # while `seg` is still referenced
    assert seg.closed
