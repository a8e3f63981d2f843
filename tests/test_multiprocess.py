"""Processes sharing one segment (``framework/locking.py`` and the named backends): concurrent
churn in spawned workers, race-free open-or-create, a lock holder killed with SIGKILL, fork."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import random
import signal
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import pytest

from segalloc import Mode, NamedSegment, managed_class, plugins

ALGORITHMS = sorted(plugins().algorithms)
SPAWN = multiprocessing.get_context("spawn")
WORKERS = 4
OPS_PER_WORKER = 2000
SEGMENT_SIZE = 1 << 20
#: the longest any process here may take; only a hang reaches it
PATIENCE = 120.0


def open_segment(backend: str, name: str, mode: Mode = Mode.OPEN_ONLY, **kwargs: Any) -> Any:
    cls: type[NamedSegment] = managed_class(plugins().backend(backend))  # type: ignore[assignment]
    return cls(mode, name, **kwargs)


@pytest.fixture(params=["shared_memory", "mapped_file"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(backend, name)`` of a segment name nobody uses yet, removed at teardown."""
    backend = str(request.param)
    if backend == "mapped_file":
        name = str(tmp_path / "shared.seg")
    else:
        name = f"segalloc-test-{uuid.uuid4().hex}"
    try:
        yield backend, name
    finally:
        managed_class(plugins().backend(backend)).remove(name)  # type: ignore[attr-defined]


def join_all(processes: list[Any]) -> None:
    for process in processes:
        process.join(PATIENCE)
        if process.is_alive():
            process.kill()
        assert process.exitcode == 0, f"{process.name} ended with {process.exitcode}"


def run_all(processes: list[Any]) -> None:
    for process in processes:
        process.start()
    join_all(processes)


def report(results: Any, target: Callable[..., Any], *args: Any) -> None:
    """Run ``target`` and put ``(True, its result)`` or ``(False, the traceback)``."""
    try:
        results.put((True, target(*args)))
    except BaseException:
        results.put((False, traceback.format_exc()))


def run_workers(kind: str, target: Callable[..., Any], backend: str, name: str) -> list[Any]:
    """``target(backend, name, worker, start)`` in WORKERS spawned processes or threads at
    once (each waits on the barrier ``start``); what each returned, in worker order."""
    results: Any
    if kind == "threads":
        start, results = threading.Barrier(WORKERS), queue.Queue()
        make: Any = threading.Thread
    else:
        start, results = SPAWN.Barrier(WORKERS), SPAWN.Queue()
        make = SPAWN.Process
    workers = [
        make(target=report, args=(results, target, backend, name, worker, start))
        for worker in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    # read before joining: a process ends only once its queue has flushed
    reports: list[tuple[bool, Any]] = []
    while len(reports) < WORKERS:
        try:
            reports.append(results.get(timeout=0.5))
        except queue.Empty:
            assert any(worker.is_alive() for worker in workers), "a worker died silently"
    for worker in workers:
        worker.join(PATIENCE)
        assert not worker.is_alive() and getattr(worker, "exitcode", 0) == 0
    for done, value in reports:
        assert done, f"a worker failed:\n{value}"
    return sorted(value for _, value in reports)


# -- concurrent churn ----------------------------------------------------------------------
def pattern(worker: int, handle: int, size: int) -> bytes:
    """The bytes worker ``worker`` keeps in its block at ``handle``: owner and block in each
    9-byte repeat, so a byte written by another owner or into another block shows."""
    tag = bytes([0xA0 + worker]) + handle.to_bytes(8, "little")
    return (tag * (size // len(tag) + 1))[:size]


def churn(
    backend: str, name: str, worker: int, start: Any
) -> tuple[int, dict[int, int], dict[str, tuple[int, int]]]:
    """Random allocate / write / check / free and construct / find / destroy on this worker's
    own blocks and names, in its own segment object; returns what it left alive."""
    rng = random.Random(worker)
    blocks: dict[int, int] = {}
    names: dict[str, tuple[int, int]] = {}
    with open_segment(backend, name) as seg:
        start.wait(PATIENCE)
        for step in range(OPS_PER_WORKER):
            roll = rng.random()
            if roll < 0.45:
                size = rng.randint(1, 400)
                handle = seg.allocate(size, nothrow=True)
                if handle is not None:
                    seg.view(handle, size)[:] = pattern(worker, handle, size)
                    blocks[handle] = size
            elif roll < 0.8 and blocks:
                handle = rng.choice(list(blocks))
                size = blocks.pop(handle)
                assert bytes(seg.view(handle, size)) == pattern(worker, handle, size)
                seg.deallocate(handle)
            elif roll < 0.9:
                key = f"w{worker}-{step}"
                count = rng.randint(1, 8)
                obj = seg.construct(ctypes.c_uint64, key, worker * 1_000_000 + step, count=count)
                assert obj[count - 1] == worker * 1_000_000 + step
                names[key] = (worker * 1_000_000 + step, count)
            elif names:
                key = rng.choice(list(names))
                value, count = names.pop(key)
                obj, found = seg.find(ctypes.c_uint64, key)
                assert found == count and list(obj) == [value] * count
                assert seg.destroy(ctypes.c_uint64, key)
        for handle, size in blocks.items():
            assert bytes(seg.view(handle, size)) == pattern(worker, handle, size)
    return worker, blocks, names


@pytest.mark.parametrize("kind", ["processes", "threads"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_workers_share_a_segment(shared: tuple[str, str], algorithm: str, kind: str) -> None:
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SEGMENT_SIZE, algorithm=algorithm) as seg:
        seg.reserve_named_objects(WORKERS * OPS_PER_WORKER // 10)  # no rehash during the run
        free_before = seg.get_free_memory()
        left = run_workers(kind, churn, backend, name)

        assert seg.check_sanity()
        owned = sorted(
            (handle, size, worker) for worker, blocks, _ in left for handle, size in blocks.items()
        )
        assert owned, "the workers left no block alive: the test would check nothing"
        for (handle, size, worker), (next_handle, _, _) in zip(owned, owned[1:] + [(1 << 62, 0, 0)]):
            assert handle + size <= next_handle, "two live blocks overlap"
            assert bytes(seg.view(handle, size)) == pattern(worker, handle, size)
        expected_names = {key: value for _, _, names in left for key, value in names.items()}
        assert {entry.name for entry in seg.named_objects()} == set(expected_names)
        for key, (value, count) in expected_names.items():
            obj, found = seg.find(ctypes.c_uint64, key)
            assert found == count and list(obj) == [value] * count

        # what the live blocks and objects leave is exactly the free memory they give back
        seg.deallocate_many([handle for handle, _, _ in owned])
        for key in expected_names:
            assert seg.destroy(ctypes.c_uint64, key)
        assert seg.all_memory_deallocated()
        assert seg.get_free_memory() == free_before
        assert seg.check_sanity()


# -- open-or-create races ------------------------------------------------------------------
def open_or_create(backend: str, name: str, worker: int, start: Any) -> bool:
    start.wait(PATIENCE)
    with open_segment(backend, name, Mode.OPEN_OR_CREATE, size=SEGMENT_SIZE) as seg:
        seg.construct(ctypes.c_int64, f"worker-{worker}", worker)
        return bool(seg.storage.created)


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_open_or_create_at_once_makes_one_segment(shared: tuple[str, str], kind: str) -> None:
    backend, name = shared
    created = run_workers(kind, open_or_create, backend, name)
    assert created.count(True) == 1
    with open_segment(backend, name) as seg:
        assert seg.check_sanity()
        for worker in range(WORKERS):
            assert seg.find(ctypes.c_int64, f"worker-{worker}")[0].value == worker


def open_and_leave(backend: str, name: str) -> None:
    with open_segment(backend, name) as seg:
        seg.construct(ctypes.c_int64, "visitor", 1)


def test_a_process_that_leaves_does_not_remove_the_segment(shared: tuple[str, str]) -> None:
    """(``multiprocessing.shared_memory``'s resource tracker would unlink it on Python < 3.13.)"""
    backend, name = shared
    open_segment(backend, name, Mode.CREATE_ONLY, size=SEGMENT_SIZE).close()
    run_all([SPAWN.Process(target=open_and_leave, args=(backend, name))])
    with open_segment(backend, name) as seg:
        assert seg.find(ctypes.c_int64, "visitor")[0].value == 1


# -- a lock holder that dies -----------------------------------------------------------------
def hold_the_lock(backend: str, name: str, holding: Event) -> None:
    with open_segment(backend, name) as seg, seg.storage.lock():
        holding.set()
        signal.pause()


def allocate_once(backend: str, name: str) -> None:
    with open_segment(backend, name) as seg:
        seg.deallocate(seg.allocate(100))


def test_a_killed_lock_holder_blocks_nobody(shared: tuple[str, str]) -> None:
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SEGMENT_SIZE) as seg:
        holding = SPAWN.Event()
        holder = SPAWN.Process(target=hold_the_lock, args=(backend, name, holding))
        holder.start()
        try:
            assert holding.wait(PATIENCE)
            lock = seg.storage.lock()
            assert not lock.acquire(blocking=False)
            waiter = SPAWN.Process(target=allocate_once, args=(backend, name))
            waiter.start()
            os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
            holder.join(PATIENCE)
            assert holder.exitcode == -signal.SIGKILL
            join_all([waiter])
            assert lock.acquire(blocking=False)
            lock.release()
            seg.deallocate(seg.allocate(100))
            assert seg.check_sanity()
        finally:
            holder.kill()
            holder.join(PATIENCE)


# -- fork ----------------------------------------------------------------------------------
def try_the_inherited_lock(seg: Any, results: Any) -> None:
    lock = seg.storage.lock()
    took = lock.acquire(blocking=False)
    if took:
        lock.release()
    results.put(took)


def test_a_forked_child_is_excluded_by_its_parent(shared: tuple[str, str]) -> None:
    """A forked child inherits the parent's open file description; it must not share the
    parent's flock through it."""
    backend, name = shared
    fork = multiprocessing.get_context("fork")
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SEGMENT_SIZE) as seg:
        results = fork.Queue()
        with seg.storage.lock():
            child = fork.Process(target=try_the_inherited_lock, args=(seg, results))
            run_all([child])
            assert results.get(timeout=PATIENCE) is False
        child = fork.Process(target=try_the_inherited_lock, args=(seg, results))
        run_all([child])
        assert results.get(timeout=PATIENCE) is True


# -- class-level resize while a peer maps; a stopped holder ------------------------------------
def hold_open(backend: str, name: str, ready: Event, leave: Event) -> None:
    with open_segment(backend, name):
        ready.set()
        leave.wait(PATIENCE)


def test_grow_and_shrink_refuse_while_a_peer_process_maps(shared: tuple[str, str]) -> None:
    backend, name = shared
    cls: Any = managed_class(plugins().backend(backend))
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SEGMENT_SIZE) as seg:
        seg.construct(ctypes.c_int64, "MyInt", 1)
    size = SEGMENT_SIZE
    for ending in ("leaves", "is killed"):
        ready, leave = SPAWN.Event(), SPAWN.Event()
        peer = SPAWN.Process(target=hold_open, args=(backend, name, ready, leave))
        peer.start()
        try:
            assert ready.wait(PATIENCE)
            for change in (lambda: cls.grow(name, 4096), lambda: cls.shrink_to_fit(name)):
                with pytest.raises(BufferError, match=rf"still mapped by pid {peer.pid}\b"):
                    change()
            with open_segment(backend, name) as seg:
                assert seg.get_size() == size and seg.check_sanity()
        finally:
            if ending == "leaves":
                leave.set()
                join_all([peer])
            else:
                peer.kill()  # the kernel drops a dead mapper's claim
                peer.join(PATIENCE)
        cls.grow(name, 4096)
        with open_segment(backend, name) as seg:
            assert seg.get_size() == size + 4096
            assert seg.find(ctypes.c_int64, "MyInt")[0].value == 1
        size = cls.shrink_to_fit(name)
        assert size < SEGMENT_SIZE


def test_a_stopped_lock_holder_times_out_naming_it(
    shared: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from segalloc import LockTimeout
    from segalloc.bench.cli import main

    backend, name = shared
    open_segment(backend, name, Mode.CREATE_ONLY, size=SEGMENT_SIZE).close()
    holding = SPAWN.Event()
    holder = SPAWN.Process(target=hold_the_lock, args=(backend, name, holding))
    holder.start()
    try:
        assert holding.wait(PATIENCE)
        os.kill(holder.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        with pytest.raises(LockTimeout, match=rf"held by pid {holder.pid}\b"):
            open_segment(backend, name, Mode.OPEN_READ_ONLY, timeout=0.1)
        where = ["--shm", name] if backend == "shared_memory" else [name]
        for command in ("check", "inspect"):
            assert main([command, *where, "--timeout", "0.1"]) == 1
            assert f"held by pid {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.join(PATIENCE)
    assert main(["check", *where, "--timeout", "0.1"]) == 0


def test_a_child_forked_during_a_transaction_commits_its_own_operations(
        shared: tuple[str, str]) -> None:
    """Before: the child inherited the transaction another thread had open, never committed
    its own operations, and the parent's next operation rolled them back (10 of 10)."""
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SEGMENT_SIZE) as seg:
        inside, release = threading.Event(), threading.Event()

        def transaction() -> None:
            with seg.transaction():
                seg.construct(ctypes.c_int64, "parent", 1)
                inside.set()
                release.wait(PATIENCE)

        thread = threading.Thread(target=transaction)
        thread.start()
        assert inside.wait(PATIENCE)
        pid = os.fork()
        if pid == 0:  # the child: its construct waits for the parent's lock, then commits
            code = 1
            try:
                seg.construct(ctypes.c_int64, "child", 2)
                code = 0 if seg._journal.pending() == 0 else 2
            finally:
                os._exit(code)
        release.set()
        thread.join(PATIENCE)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        seg.deallocate(seg.allocate(16))  # the parent's next operation
        assert seg.recovered is None, "the parent rolled back the child's work"
        assert seg.find(ctypes.c_int64, "child")[0].value == 2
        assert seg.find(ctypes.c_int64, "parent")[0].value == 1
        assert seg.check_sanity()
