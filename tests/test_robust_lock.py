"""The robust mutex in the trailer of a named segment (``framework/robust.py``,
``framework/locking.py``): a holder killed inside a transaction, a stale lock word after every
opener is gone, compiled and interpreted processes on one mutex, fork after a failed open."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_multiprocess import open_segment

import segalloc
import segalloc.robust
from segalloc import LockTimeout, Mode, managed_class, plugins
from segalloc.locking import MAGIC, TRAILER
from segalloc.robust import RobustMutex

SIZE = 1 << 18
#: the longest any wait here may take; only a hang reaches it
PATIENCE = 60.0
#: how long a holder lives on once others wait for it (they check they waited that long)
HANDOVER_DELAY = 0.3


@pytest.fixture(params=["shared_memory", "mapped_file"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``(backend, name, path of the object)`` of a segment name nobody uses yet."""
    backend = str(request.param)
    cls = managed_class(plugins().backend(backend))
    name = str(tmp_path / "robust.seg") if backend == "mapped_file" \
        else f"segalloc-robust-{uuid.uuid4().hex}"
    _, path = cls.storage_class._path_of(name)  # type: ignore[attr-defined]
    try:
        yield backend, name, path
    finally:
        cls.remove(name)  # type: ignore[attr-defined]


def test_the_lock_is_the_trailer_mutex_after_the_segment_bytes(
        shared: tuple[str, str, str]) -> None:
    backend, name, path = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE) as seg:
        assert isinstance(seg.storage.lock(), RobustMutex)
        assert seg.get_size() == SIZE and os.stat(path).st_size == SIZE + TRAILER
        with open(path, "rb") as raw:
            assert raw.read()[-len(MAGIC):] == MAGIC
    with open_segment(backend, name, Mode.OPEN_READ_ONLY) as reader:  # a reader takes it too
        assert isinstance(reader.storage.lock(), RobustMutex)
        assert reader.find(ctypes.c_int64, "nothing")[0] is None

def test_the_steady_lock_is_what_lock_returns_while_that_stays_the_same(
        shared: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Operations take ``steady_lock`` without asking ``lock()``; it is None while ``lock()``
    answers something else (the formatting section, a timeout, a closed storage)."""
    backend, name, _ = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE) as seg:
        storage = seg.storage
        assert storage.steady_lock is storage.lock() and isinstance(storage.steady_lock,
                                                                    RobustMutex)
        asked: list[int] = []
        real_lock = storage.lock
        monkeypatch.setattr(storage, "lock", lambda: asked.append(1) or real_lock())
        seg.deallocate(seg.allocate(64))
        assert not asked, "a steady lock was asked for"
        seg.lock_timeout = 5.0
        assert storage.steady_lock is None
        seg.deallocate(seg.allocate(64))
        assert len(asked) == 2, "with a timeout, each operation takes what lock() returns"
        seg.lock_timeout = None
        assert storage.steady_lock is real_lock()
        monkeypatch.undo()
    assert storage.steady_lock is None  # closed


def test_a_holder_killed_inside_a_transaction_is_rolled_back_by_the_next_locker(
        shared: tuple[str, str, str]) -> None:
    """The child dies (SIGKILL) holding the mutex with a transaction half done: the kernel marks
    the mutex, the parent's next operation takes it (``EOWNERDEAD``) instead of waiting for
    ever, rolls the journal back and verifies."""
    backend, name, _ = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE, timeout=PATIENCE) as seg:
        seg.construct(ctypes.c_int64, "before", 1)
        pid = os.fork()
        if pid == 0:
            try:
                with seg.transaction():
                    seg.construct(ctypes.c_int64, "lost", 2)
                    seg.allocate(4096)
                    os.kill(os.getpid(), signal.SIGKILL)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL
        lock = seg.storage._lock.mutex
        assert lock.abandoned == 0
        seg.deallocate(seg.allocate(64))  # the next locker: recovers, then runs
        assert lock.abandoned == 1 and seg.recovered is not None
        assert seg.find(ctypes.c_int64, "lost")[0] is None
        assert seg.find(ctypes.c_int64, "before")[0].value == 1
        assert seg.check_sanity()


def _forked(body: Callable[[int], int]) -> tuple[int, int]:
    """``(pid, read end)`` of a child running ``body`` (its exit code), which writes one byte
    to the pipe just before."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            code = body(write)
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def test_a_holder_killed_while_others_wait_hands_the_lock_over(
        shared: tuple[str, str, str]) -> None:
    """Kills inside a lock handover: a holder dies mid-transaction while two processes wait in
    the kernel for the mutex and one of those waiters is killed too; the waiter left wakes
    with the lock (``EOWNERDEAD``), rolls the holder's work back and does its own."""
    backend, name, _ = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE, timeout=PATIENCE) as seg:
        seg.construct(ctypes.c_int64, "before", 1)

        def hold(ready: int) -> int:
            with seg.transaction():
                seg.construct(ctypes.c_int64, "lost", 2)
                os.write(ready, b"h")
                signal.pause()  # killed here, holding the mutex
            return 1

        def wait(ready: int) -> int:
            lock = seg.storage._lock.mutex
            started = time.monotonic()
            os.write(ready, b"w")
            seg.construct(ctypes.c_int64, "after", 3)  # waits for the holder's death
            waited = time.monotonic() - started
            return 0 if lock.abandoned == 1 and waited >= HANDOVER_DELAY \
                and seg.find(ctypes.c_int64, "lost")[0] is None else 2

        holder, holding = _forked(hold)
        assert os.read(holding, 1) == b"h"
        victim, victim_ready = _forked(wait)
        waiter, waiter_ready = _forked(wait)
        assert os.read(victim_ready, 1) == os.read(waiter_ready, 1) == b"w"
        time.sleep(HANDOVER_DELAY)  # both are in the kernel by now (the waiter checks it)
        os.kill(victim, signal.SIGKILL)
        assert os.waitstatus_to_exitcode(os.waitpid(victim, 0)[1]) == -signal.SIGKILL
        os.kill(holder, signal.SIGKILL)
        assert os.waitstatus_to_exitcode(os.waitpid(holder, 0)[1]) == -signal.SIGKILL
        assert os.waitstatus_to_exitcode(os.waitpid(waiter, 0)[1]) == 0
        for fd in (holding, victim_ready, waiter_ready):
            os.close(fd)
        assert seg.find(ctypes.c_int64, "lost")[0] is None
        assert seg.find(ctypes.c_int64, "after")[0].value == 3
        assert seg.find(ctypes.c_int64, "before")[0].value == 1
        assert seg.check_sanity()


def test_a_stale_lock_word_is_renewed_when_no_other_process_uses_it(
        shared: tuple[str, str, str]) -> None:
    """The mutex's bytes say "locked by a thread" that the kernel never marked dead (a file
    after a reboot, an object copied while locked): the first opener, alone, renews it; until
    then every locker would wait for ever."""
    backend, name, path = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE) as seg:
        seg.construct(ctypes.c_int64, "kept", 7)
        held, done = threading.Event(), threading.Event()

        def hold() -> None:
            with seg.locked():
                held.set()
                done.wait(PATIENCE)

        thread = threading.Thread(target=hold)
        thread.start()
        assert held.wait(PATIENCE)
        size = os.stat(path).st_size
        fd = os.open(path, os.O_RDWR)
        try:
            locked = os.pread(fd, TRAILER, size - TRAILER)  # the trailer while held
            done.set()
            thread.join(PATIENCE)
            assert os.pread(fd, TRAILER, size - TRAILER) != locked  # unlocked since
        finally:
            os.close(fd)
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, locked, size - TRAILER)  # as if copied while locked
    finally:
        os.close(fd)
    with open_segment(backend, name, timeout=5.0) as seg:
        seg.deallocate(seg.allocate(64))
        assert seg.find(ctypes.c_int64, "kept")[0].value == 7
        assert seg.check_sanity()


_PEER = """
import ctypes, sys
import segalloc, segalloc.robust
from segalloc import Mode, managed_class, plugins
cls = managed_class(plugins().backend(sys.argv[1]))
with cls(Mode.OPEN_ONLY, sys.argv[2]) as seg:
    print(segalloc.is_compiled(segalloc.robust), flush=True)
    with seg.locked():
        print("holding", flush=True)
        sys.stdin.readline()
    counter = seg.find(ctypes.c_int64, "counter")[0]
    for _ in range(int(sys.argv[3])):
        with seg.locked():
            value = counter.value
            seg.deallocate(seg.allocate(64))
            counter.value = value + 1
    del counter
"""


def test_compiled_and_interpreted_processes_exclude_each_other(
        shared: tuple[str, str, str]) -> None:
    """A peer of the other build (``SEGALLOC_PURE_PYTHON``) locks the same mutex: while it
    holds it this process times out naming it; then both count under the lock and lose no
    increment."""
    backend, name, _ = shared
    here = segalloc.is_compiled(segalloc.robust)
    environment = dict(os.environ)
    if here:
        environment["SEGALLOC_PURE_PYTHON"] = "1"
    else:
        environment.pop("SEGALLOC_PURE_PYTHON", None)
    rounds = 1000
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE) as seg:
        counter = seg.construct(ctypes.c_int64, "counter", 0)
        with subprocess.Popen([sys.executable, "-c", _PEER, backend, name, str(rounds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=environment) as peer:
            try:
                assert peer.stdout is not None and peer.stdin is not None
                assert peer.stdout.readline().strip() == str(not here)  # the other build
                assert peer.stdout.readline().strip() == "holding"
                seg.lock_timeout = 0.05
                with pytest.raises(LockTimeout, match=rf"held by pid {peer.pid} \(thread"):
                    seg.allocate(64)
                seg.lock_timeout = None
                peer.stdin.write("go\n")
                peer.stdin.flush()
                for _ in range(rounds):
                    with seg.locked():
                        value = counter.value
                        seg.deallocate(seg.allocate(64))
                        counter.value = value + 1
                assert peer.wait(PATIENCE) == 0
            finally:
                peer.kill()
        assert counter.value == 2 * rounds
        del counter
        assert seg.check_sanity()


def test_a_child_forked_after_a_failed_open_forgets_the_parents_sections(
        shared: tuple[str, str, str]) -> None:
    """Before: an open that timed out on the mutex left a segment object among the open ones,
    whose fork handler failed and skipped the others', so a child forked while another thread
    held a transaction kept its depth and never committed (7 of 8 runs)."""
    backend, name, _ = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE) as seg:
        held, done = threading.Event(), threading.Event()

        def hold(transaction: bool) -> None:
            with seg.transaction() if transaction else seg.locked():
                if transaction:
                    seg.construct(ctypes.c_int64, "parent", 1)
                held.set()
                done.wait(PATIENCE)

        thread = threading.Thread(target=hold, args=(False,))
        thread.start()
        assert held.wait(PATIENCE)
        with pytest.raises(LockTimeout):
            open_segment(backend, name, timeout=0.05)  # fails inside its first section
        done.set()
        thread.join(PATIENCE)
        held.clear()
        done.clear()
        thread = threading.Thread(target=hold, args=(True,))
        thread.start()
        assert held.wait(PATIENCE)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                seg.construct(ctypes.c_int64, "child", 2)
                code = 0 if seg._journal.pending() == 0 else 2
            finally:
                os._exit(code)
        done.set()
        thread.join(PATIENCE)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        seg.deallocate(seg.allocate(16))
        assert seg.recovered is None, "the parent rolled back the child's work"
        assert seg.find(ctypes.c_int64, "child")[0].value == 2
        assert seg.check_sanity()
