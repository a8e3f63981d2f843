"""Reads without the lock (``SegmentCore.read_version`` / ``read_holds``, the mutex's version
word in ``framework/robust.py``): a writer makes the word odd while it writes, a reader keeps
what it read only when the word did not move, and otherwise reads under the lock; a writer
that died inside leaves the word odd until the next locker repairs the segment."""

from __future__ import annotations

import ctypes
import os
import select
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import test_multiprocess
from test_multiprocess import open_segment
from test_robust_lock import PATIENCE, _forked

from segalloc import Mode, SegmentDict, SegmentList, SegmentVector, objects

#: the fixture: ``(backend, name)`` of a shared-memory or file segment nobody uses yet
shared = test_multiprocess.shared

SIZE = 1 << 20
#: how long a writer keeps its transaction open while the reader asks
HOLD = 0.3
#: how long the writer of the stress test writes
WRITING = 1.5
#: keys present from the start to the end of the stress test
FIXED = 64


def _version(seg: Any) -> int:
    """The value of the segment's version word."""
    at = seg.storage.version_word
    assert at, "a shared segment's lock has a version word"
    return ctypes.c_longlong.from_address(at).value


def test_writes_make_the_version_word_odd_inside_and_reads_leave_it(
        shared: tuple[str, str]) -> None:
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE) as seg:
        mapping = seg.construct(SegmentDict[str, int], "d")
        mapping["k"] = 1
        before = _version(seg)
        assert before % 2 == 0
        with seg.transaction():
            mapping["k"] = 2
            assert _version(seg) % 2 == 1
        after = _version(seg)
        assert after % 2 == 0 and after > before
        assert (mapping["k"], "k" in mapping, "x" in mapping, len(mapping), mapping.copy()) == \
            (2, True, False, 1, {"k": 2})
        assert mapping.get("x") is None
        assert _version(seg) == after
        with open_segment(backend, name) as other:  # another opener sees the same word
            assert _version(other) == after


def _read_beside_a_failing_writer(seg: Any, write: Callable[[], object],
                                  read: Callable[[], Any]) -> Any:
    """What ``read`` gives while a child is inside a transaction that did ``write`` and then
    rolls back; checks that the read waited for the child's end."""

    def write_then_fail(ready: int) -> int:
        try:
            with seg.transaction():
                write()
                os.write(ready, b"w")
                time.sleep(HOLD)
                raise RuntimeError("rolled back")
        except RuntimeError:
            return 0

    writer, ready = _forked(write_then_fail)
    assert os.read(ready, 1) == b"w"
    started = time.monotonic()
    answer = read()
    assert time.monotonic() - started >= HOLD / 2
    assert os.waitstatus_to_exitcode(os.waitpid(writer, 0)[1]) == 0
    os.close(ready)
    return answer


@pytest.mark.parametrize("sequence", [SegmentList, SegmentVector])
def test_sequence_reads_leave_the_word_and_wait_for_a_writer_inside(
        shared: tuple[str, str], sequence: Any) -> None:
    """A list's or vector's index, slice, copy, iteration, ``in`` and ``len`` read without the
    lock; meeting a writer inside (a child that changes an element, then rolls back), the
    reader waits and reads the element the rollback restored."""
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE, timeout=PATIENCE) as seg:
        items = seg.construct(sequence[ctypes.c_int64], "s", [1, 2, 3])
        before = _version(seg)
        assert (items[0], items[-1], items[1:], items.copy(), list(items), 2 in items,
                len(items)) == (1, 3, [2, 3], [1, 2, 3], [1, 2, 3], True, 3)
        assert _version(seg) == before
        assert _read_beside_a_failing_writer(seg, lambda: items.__setitem__(0, 10),
                                             lambda: items[0]) == 1


def test_a_reader_meeting_a_writer_inside_waits_for_its_end(shared: tuple[str, str]) -> None:
    """The writer (a child) changed the value in place and then rolls back: a read without the
    lock would see its change; the reader, finding the word odd, waits for the lock instead and
    reads the value the rollback restored."""
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE, timeout=PATIENCE) as seg:
        mapping = seg.construct(SegmentDict[str, int], "d")
        mapping["k"] = 1
        assert _read_beside_a_failing_writer(seg, lambda: mapping.__setitem__("k", 2),
                                             lambda: mapping["k"]) == 1
        assert _version(seg) % 2 == 0


def _answers_beside_a_lock_holder(seg: Any, read: Callable[[], Any]) -> Any:
    """What ``read`` gives while a child holds the segment's lock for a read; the child exits
    1 (failing the check here) when ``read`` waited for that lock instead of answering."""
    answered, answer = os.pipe()

    def hold_for_a_read(ready: int) -> int:
        with seg.locked():
            os.write(ready, b"r")
            heard = select.select([answered], [], [], HOLD * 30)[0]
        return 0 if heard else 1  # 1: the parent's read waited for this lock

    holder, ready = _forked(hold_for_a_read)
    assert os.read(ready, 1) == b"r"
    found = read()
    os.write(answer, b"a")
    assert os.waitstatus_to_exitcode(os.waitpid(holder, 0)[1]) == 0
    for end in (ready, answered, answer):
        os.close(end)
    return found


def test_find_array_reads_without_the_lock_and_waits_for_a_writer_inside(
        shared: tuple[str, str]) -> None:
    """``find_array`` reads the name index without the lock: a child holding the lock for a
    read does not hold it up, and the version word stays as it was; meeting a writer inside (a
    child that destroyed the array and rolls back), it waits and finds the array again."""
    import numpy  # (the test extra installs it)

    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE, timeout=PATIENCE) as seg:
        seg.construct_array("a", (4,), numpy.int64)[:] = [1, 2, 3, 4]
        before = _version(seg)
        found = _answers_beside_a_lock_holder(seg, lambda: seg.find_array("a"))
        assert list(found) == [1, 2, 3, 4]
        assert _version(seg) == before
        found = _read_beside_a_failing_writer(seg, lambda: seg.destroy_array("a"),
                                              lambda: seg.find_array("a"))
        assert found is not None and list(found) == [1, 2, 3, 4]


class _AttachingDict(SegmentDict[str, int]):  # type: ignore[misc]
    """A dict type whose own ``segment_attach`` does not say it stores nothing."""

    @classmethod
    def segment_attach(cls, segment: Any, offset: int) -> Any:
        return super().segment_attach(segment, offset)


def test_find_and_the_listings_read_without_the_lock_and_wait_for_a_writer_inside(
        shared: tuple[str, str]) -> None:
    """``find`` of a container or a ctypes object, the listings and the counts read the name
    index without the lock (a child holding it for a read does not hold them up, the version
    word stays); meeting a writer inside (a child that destroyed the dict and rolls back),
    ``find`` waits and finds it again. A type that overrides ``segment_attach`` without saying
    it stores nothing is attached under the lock."""
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE, timeout=PATIENCE) as seg:
        seg.construct(SegmentDict[str, int], "d")["k"] = 7
        seg.construct(ctypes.c_int64, "x").value = 9
        before = _version(seg)

        def reads() -> tuple[Any, ...]:
            mapping, count = seg.find(SegmentDict[str, int], "d")
            number, _ = seg.find(ctypes.c_int64, "x")
            return (mapping["k"], count, number.value, seg.find(ctypes.c_int64, "y"),
                    sorted(each.name for each in seg.named_objects()),
                    seg.num_named_objects(), seg.num_unique_objects())

        assert _answers_beside_a_lock_holder(seg, reads) == \
            (7, 1, 9, (None, 0), ["d", "x"], 2, 0)
        assert _version(seg) == before
        found = _read_beside_a_failing_writer(
            seg, lambda: seg.destroy(SegmentDict[str, int], "d"),
            lambda: seg.find(SegmentDict[str, int], "d")[0])
        assert found is not None and found["k"] == 7
        assert objects.attach_stores_nothing(SegmentDict[str, int])
        assert objects.attach_stores_nothing(ctypes.c_int64)
        assert not objects.attach_stores_nothing(_AttachingDict)


def test_a_writer_killed_inside_leaves_the_word_odd_until_a_reader_repairs(
        shared: tuple[str, str]) -> None:
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE, timeout=PATIENCE) as seg:
        mapping = seg.construct(SegmentDict[str, int], "d")
        mapping["k"] = 1

        def write_then_die(ready: int) -> int:
            with seg.transaction():
                for key in range(100):  # a resize or two of the bucket table, half done
                    mapping[f"lost{key}"] = key
                mapping["k"] = 2
                os.write(ready, b"w")
                os.kill(os.getpid(), signal.SIGKILL)
            return 1

        writer, ready = _forked(write_then_die)
        assert os.read(ready, 1) == b"w"
        assert os.waitstatus_to_exitcode(os.waitpid(writer, 0)[1]) == -signal.SIGKILL
        os.close(ready)
        assert _version(seg) % 2 == 1
        assert mapping["k"] == 1 and len(mapping) == 1  # the read locked and rolled back
        repaired = _version(seg)
        assert repaired % 2 == 0
        assert mapping.copy() == {"k": 1} and "lost0" not in mapping
        assert _version(seg) == repaired and seg.check_sanity()


def test_reads_without_the_lock_never_see_a_write_half_done(shared: tuple[str, str]) -> None:
    """A writer process updates fixed keys with rising values and inserts and deletes others
    (the bucket table grows and nodes move) while this process reads: every fixed key is always
    there, its value never goes back, and a copy holds every fixed key."""
    backend, name = shared
    with open_segment(backend, name, Mode.CREATE_ONLY, size=SIZE, timeout=PATIENCE) as seg:
        mapping = seg.construct(SegmentDict[str, int], "d")
        fixed = [f"fixed{i}" for i in range(FIXED)]
        for key in fixed:
            mapping[key] = 0

        def write(ready: int) -> int:
            os.write(ready, b"w")
            deadline = time.monotonic() + WRITING
            round_ = 0
            while time.monotonic() < deadline:
                round_ += 1
                for key in fixed:
                    mapping[key] = round_
                for extra in range(16):
                    mapping[f"extra{round_}-{extra}"] = extra
                if round_ % 8 == 0:
                    for old in range(round_ - 7, round_ + 1):
                        for extra in range(16):
                            del mapping[f"extra{old}-{extra}"]
            return 0

        writer, ready = _forked(write)
        assert os.read(ready, 1) == b"w"
        seen = dict.fromkeys(fixed, 0)
        reads = 0
        while True:
            done, status = os.waitpid(writer, os.WNOHANG)
            if done:
                break
            for key in fixed:
                value = mapping[key]
                assert value >= seen[key], f"{key} went back from {seen[key]} to {value}"
                seen[key] = value
                assert key in mapping
                reads += 1
            assert len(mapping) >= FIXED
            snapshot = mapping.copy()
            assert all(key in snapshot for key in fixed)
        os.close(ready)
        assert os.waitstatus_to_exitcode(status) == 0
        assert reads > FIXED  # the reads overlapped the writes
        assert mapping.copy().keys() >= set(fixed) and seg.check_sanity()
