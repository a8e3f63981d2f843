"""``segalloc.thread_lock.ThreadLock``: the re-entrant lock of heap and external-buffer storage,
which the segment core takes in C (compiled) on every operation."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from segalloc import ManagedExternalBuffer, ManagedHeapMemory, Mode
from segalloc.thread_lock import ThreadLock

#: the longest a thread here may wait; only a hang reaches it
PATIENCE = 30.0


def _holding(lock: ThreadLock, held: threading.Event, release: threading.Event) -> None:
    with lock:
        held.set()
        release.wait(PATIENCE)


def _held_by_another_thread(lock: ThreadLock) -> tuple[threading.Thread, threading.Event]:
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_holding, args=(lock, held, release))
    holder.start()
    assert held.wait(PATIENCE)
    return holder, release


def test_the_owner_reenters_and_other_threads_wait_until_the_last_release() -> None:
    lock = ThreadLock()
    assert lock.acquire() and lock.acquire()  # re-entered by its owner
    got: list[float] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=PATIENCE)))
    waiter.start()
    time.sleep(0.05)
    lock.release()
    time.sleep(0.05)
    assert not got, "another thread took the lock its owner still held once"
    lock.release()  # the waiter waits with the GIL released, so this thread got here
    waiter.join(PATIENCE)
    assert got == [True]


def test_a_timed_wait_gives_up_and_a_non_blocking_one_does_not_wait() -> None:
    lock = ThreadLock()
    holder, release = _held_by_another_thread(lock)
    try:
        assert lock.acquire(blocking=False) is False
        start = time.monotonic()
        assert lock.acquire(timeout=0.1) is False
        assert 0.09 <= time.monotonic() - start < PATIENCE
    finally:
        release.set()
        holder.join(PATIENCE)
    assert lock.acquire(blocking=False)
    lock.release()
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(blocking=False, timeout=1)


def test_only_the_owner_releases() -> None:
    lock = ThreadLock()
    with pytest.raises(RuntimeError, match="un-acquired"):
        lock.release()
    holder, release = _held_by_another_thread(lock)
    try:
        with pytest.raises(RuntimeError, match="un-acquired"):
            lock.release()
    finally:
        release.set()
        holder.join(PATIENCE)


@pytest.mark.parametrize("make", [
    lambda: ManagedHeapMemory(1 << 16),
    lambda: ManagedExternalBuffer(Mode.CREATE_ONLY, bytearray(1 << 16)),
], ids=["heap", "external"])
def test_a_child_forked_while_another_thread_holds_the_lock_operates(make: object) -> None:
    """Before (``threading.RLock``): the child's copy of the lock stayed held by a thread the
    child does not have, and its first operation waited for ever."""
    segment = make()  # type: ignore[operator]
    holder, release = _held_by_another_thread(segment.storage.lock())
    try:
        pid = os.fork()
        if pid == 0:  # the child: a hang dies of the alarm
            code = 1
            try:
                signal.alarm(int(PATIENCE))
                segment.deallocate(segment.allocate(64))
                code = 0 if segment.check_sanity() else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        holder.join(PATIENCE)
    segment.deallocate(segment.allocate(64))  # the parent's lock is whole
    segment.close()
