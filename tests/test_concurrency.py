"""Concurrent load: 8 processes x 20,000 operations on one shared-memory segment, per algorithm.

Every worker (a spawned process) allocates blocks and stamps each with its own pattern, checks
and frees its own blocks, and constructs, finds and destroys objects under its own names, all
at once on one ``ManagedSharedMemory``. Afterwards the parent finds nothing lost (every
surviving block still holds its owner's pattern, every surviving name is found with its value),
nothing overlapping (the algorithm's live blocks are disjoint and include every survivor), a
sane segment, and exact free-memory accounting (freeing every survivor gives back exactly the
free memory the segment had before the load).
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import struct
import traceback
from ctypes import c_int64
from typing import Any

import pytest

import segalloc
from segalloc import BadAlloc, Mode, plugins

ALGORITHMS = sorted(plugins().algorithms)
SPAWN = multiprocessing.get_context("spawn")
WORKERS = 8
OPERATIONS = 20_000
SEGMENT_SIZE = 4 << 20
#: blocks one worker keeps at most; with names, the load stays well inside the segment
MAX_BLOCKS = 160
MAX_BLOCK_SIZE = 400
#: names reserved up front, so the index never rehashes and free memory is comparable
NAMES_RESERVED = 16_384
#: algorithms that walk every block on each operation (the example plugin's implicit list):
#: their full load takes minutes, so it is marked slow and a tenth of it runs by default
WALKING_ALGORITHMS = frozenset({"implicit_fit"})
#: the longest a worker may take; only a hang (or a lost lock) reaches it
PATIENCE = 300.0


def pattern(worker: int, serial: int, size: int) -> bytes:
    """The bytes a worker stamps on its block number ``serial``: unique per block."""
    stamp = struct.pack("<HxxI", worker, serial)
    return (stamp * (size // len(stamp) + 1))[:size]


def churn(name: str, worker: int, operations: int) -> dict[str, Any]:
    """One worker's load; returns what survives, what it checked, and any fault it saw."""
    rng = random.Random(f"{name}/{worker}")
    faults: list[str] = []
    blocks: dict[int, tuple[int, int]] = {}  # handle -> (size, serial)
    names: dict[str, int] = {}
    done = {"allocated": 0, "freed": 0, "constructed": 0, "found": 0, "destroyed": 0,
            "no_memory": 0}
    with segalloc.ManagedSharedMemory(Mode.OPEN_ONLY, name) as seg:
        for serial in range(operations):
            roll = rng.random()
            if roll < 0.42 and len(blocks) < MAX_BLOCKS:
                size = rng.randrange(1, MAX_BLOCK_SIZE)
                try:
                    handle = seg.allocate(size)
                except BadAlloc:
                    done["no_memory"] += 1
                    continue
                seg.view(handle, size)[:] = pattern(worker, serial, size)
                blocks[handle] = (size, serial)
                done["allocated"] += 1
            elif roll < 0.80 and blocks:
                handle = rng.choice(list(blocks))
                size, stamped = blocks.pop(handle)
                if bytes(seg.view(handle, size)) != pattern(worker, stamped, size):
                    faults.append(f"block {handle} was overwritten before it was freed")
                seg.deallocate(handle)
                done["freed"] += 1
            elif roll < 0.90:
                key = f"w{worker}/{serial}"
                value = rng.getrandbits(62)
                seg.construct(c_int64, key, value)
                names[key] = value
                done["constructed"] += 1
            elif roll < 0.95 and names:
                key = rng.choice(list(names))
                obj, _ = seg.find(c_int64, key)
                if obj is None or obj.value != names[key]:
                    faults.append(f"object {key!r} was lost or changed")
                done["found"] += 1
            elif names:
                key = rng.choice(list(names))
                if not seg.destroy(c_int64, key):
                    faults.append(f"object {key!r} could not be destroyed")
                del names[key]
                done["destroyed"] += 1
    return {"worker": worker, "blocks": blocks, "names": names, "done": done, "faults": faults}


def report(results: Any, name: str, worker: int, operations: int, start: Any) -> None:
    """Process body: wait for every worker, run the load, put ``(ok, result or traceback)``."""
    try:
        start.wait(PATIENCE)
        results.put((True, churn(name, worker, operations)))
    except BaseException:
        results.put((False, traceback.format_exc()))


def run_load(name: str, operations: int) -> list[dict[str, Any]]:
    """WORKERS spawned processes at once; their results, in worker order."""
    results, start = SPAWN.Queue(), SPAWN.Barrier(WORKERS)
    processes = [SPAWN.Process(target=report, args=(results, name, worker, operations, start),
                               name=f"churn-{worker}") for worker in range(WORKERS)]
    for process in processes:
        process.start()
    outcomes = []
    try:
        for _ in processes:
            outcomes.append(results.get(timeout=PATIENCE))
    except queue.Empty:
        pytest.fail("a worker gave no result in time: a hang or a lost lock")
    finally:
        for process in processes:
            process.join(PATIENCE)
            if process.is_alive():
                process.kill()
    failures = [detail for ok, detail in outcomes if not ok]
    assert not failures, failures[0]
    assert [process.exitcode for process in processes] == [0] * WORKERS
    return sorted((detail for _, detail in outcomes), key=lambda result: result["worker"])



def check_nothing_lost_or_overlapping(seg: Any, results: list[dict[str, Any]]) -> None:
    """Every survivor holds its owner's pattern and every name its value; live blocks are
    disjoint and cover every survivor."""
    live = dict(seg.algorithm.allocated_blocks())
    ends = sorted((handle, handle + size) for handle, size in live.items())
    for (_, end), (start, _) in zip(ends, ends[1:]):
        assert end <= start, f"live blocks overlap at {start}"
    for result in results:
        assert not result["faults"], result["faults"][:5]
        worker = result["worker"]
        for handle, (size, serial) in result["blocks"].items():
            assert live.get(handle, -1) >= size, f"worker {worker}'s block {handle} is not live"
            assert bytes(seg.view(handle, size)) == pattern(worker, serial, size), (
                f"worker {worker}'s block {handle} lost its contents")
        for key, value in result["names"].items():
            obj, _ = seg.find(c_int64, key)
            assert obj is not None and obj.value == value, f"object {key!r} was lost"
    assert seg.num_named_objects() == sum(len(result["names"]) for result in results)


def release_everything(seg: Any, results: list[dict[str, Any]]) -> None:
    for result in results:
        seg.deallocate_many(list(result["blocks"]))
        for key in result["names"]:
            assert seg.destroy(c_int64, key)


def load_and_check(name: str, algorithm: str, operations: int) -> dict[str, int]:
    with segalloc.ManagedSharedMemory(Mode.CREATE_ONLY, name, SEGMENT_SIZE,
                                       algorithm=algorithm) as seg:
        seg.reserve_named_objects(NAMES_RESERVED)
        free_before = seg.get_free_memory()
    results = run_load(name, operations)
    with segalloc.ManagedSharedMemory(Mode.OPEN_ONLY, name) as seg:
        check_nothing_lost_or_overlapping(seg, results)
        seg.verify()
        release_everything(seg, results)
        seg.verify()
        assert seg.all_memory_deallocated()
        assert seg.get_free_memory() == free_before, "free memory is not accounted exactly"
    totals: dict[str, int] = {}
    for result in results:
        for key, count in result["done"].items():
            totals[key] = totals.get(key, 0) + count
    assert totals["allocated"] > operations and totals["constructed"] > operations // 10
    return totals


def _full_load(algorithm: str) -> Any:
    """The full load of ``algorithm``, marked slow if it is one of WALKING_ALGORITHMS."""
    slow = algorithm in WALKING_ALGORITHMS
    return pytest.param(algorithm, marks=pytest.mark.slow if slow else ())


@pytest.mark.parametrize("algorithm", [_full_load(algorithm) for algorithm in ALGORITHMS])
def test_eight_processes_share_one_segment(algorithm: str, shm_name: str) -> None:
    load_and_check(shm_name, algorithm, OPERATIONS)


@pytest.mark.parametrize("algorithm", sorted(WALKING_ALGORITHMS & set(ALGORITHMS)))
def test_eight_processes_lighter_load(algorithm: str, shm_name: str) -> None:
    """The same check with a tenth of the operations, in the default run, for the algorithms
    whose full load is marked slow."""
    load_and_check(shm_name, algorithm, OPERATIONS // 10)
