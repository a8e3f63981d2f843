"""Kills inside class-level ``grow`` / ``shrink_to_fit`` and inside creation (the named backends,
``backends/mapping.py`` and ``NamedSegment``): after every kill the segment opens, its size
agrees with its header and its backing object, it verifies, and its object is still there.

A forked child does the work and is killed with SIGKILL, either by itself at a step boundary
(a patched step kills its own process) or by the parent after a random delay. A bounded number
of random kills runs by default; ``-m slow`` runs many more.
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import Any

import pytest

from segalloc import Mode, NamedSegment, plugins
from segalloc.header import SegmentHeader
from segalloc.locking import TRAILER
from segalloc.managed import managed_class

ALGORITHMS = sorted(plugins().algorithms)
BACKENDS = ["shared_memory", "mapped_file"]
SIZE = 1 << 16
EXTRA = 1 << 15
#: random kills per backend and algorithm (default run / -m slow)
RANDOM_KILLS, SLOW_RANDOM_KILLS = 6, 200
#: random kills during creation per backend (default run / -m slow)
CREATION_KILLS, SLOW_CREATION_KILLS = 20, 200


@pytest.fixture(params=BACKENDS)
def segment_name(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    cls = managed_class(plugins().backend(request.param))
    name = f"segalloc-resize-{uuid.uuid4().hex}" if request.param == "shared_memory" \
        else str(tmp_path / "segment")
    yield cls, name
    cls.remove(name)


def backing_size(cls: Any, name: str) -> int:
    """The object's bytes before the lock's trailer (``segalloc.locking``)."""
    _, path = cls.storage_class._path_of(name)
    return os.stat(path).st_size - TRAILER


def make(cls: Any, name: str, algorithm: str) -> None:
    with cls(Mode.CREATE_ONLY, name, SIZE, algorithm=algorithm) as seg:
        seg.construct(ctypes.c_int64, "MyInt", 42)
        seg.allocate(1000)  # something live, so shrink_to_fit has a tail to give back
        seg.flush()


def assert_settled(cls: Any, name: str, sizes: Container[int]) -> int:
    """The segment opens, agrees with its header and object, verifies, keeps its object."""
    with cls(Mode.OPEN_ONLY, name) as seg:
        size = seg.get_size()
        header = SegmentHeader.read(seg.buffer, size)
        assert header.total_size == size == backing_size(cls, name)
        assert seg.check_sanity(), "the segment does not verify after the kill"
        obj, count = seg.find(ctypes.c_int64, "MyInt")
        assert obj is not None and (obj.value, count) == (42, 1)
        del obj
    assert size in sizes, f"size {size} is neither before nor after the resize ({sizes})"
    return size


def in_child(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child; its wait status."""
    pid = os.fork()
    if pid == 0:  # never returns into pytest
        try:
            work()
        finally:
            os._exit(0)
    return os.waitpid(pid, 0)[1]


def die_after(owner: Any, attribute: str) -> None:
    """Patch ``owner.attribute`` (in this child) to SIGKILL the process once it returns."""
    original = getattr(owner, attribute)

    def dying(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, attribute, dying)


def die_before(owner: Any, attribute: str) -> None:
    def dying(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, attribute, dying)


def algorithm_class(name: str) -> Any:
    return plugins().algorithm(name)


#: (resize, how the child dies): every boundary between the steps of grow and shrink
BOUNDARIES: dict[str, tuple[str, Callable[[str], None]]] = {
    "grow: before the object is extended": (
        "grow", lambda alg: die_before(os, "posix_fallocate")),
    "grow: object extended, tail not taken in": (
        "grow", lambda alg: die_before(NamedSegment, "_take_in_tail")),
    "grow: algorithm grown, header not written": (
        "grow", lambda alg: die_after(algorithm_class(alg), "grow")),
    "grow: header written, not committed": (
        "grow", lambda alg: die_after(NamedSegment, "_rewrite_header")),
    "grow: committed": (
        "grow", lambda alg: die_after(NamedSegment, "_take_in_tail")),
    "shrink: algorithm shrunk, header not written": (
        "shrink", lambda alg: die_after(algorithm_class(alg), "shrink_to_fit")),
    "shrink: header written, not committed": (
        "shrink", lambda alg: die_after(SegmentHeader, "write")),
    "shrink: committed, object not cut": (
        "shrink", lambda alg: die_after(NamedSegment, "_give_back_tail")),
    "shrink: object cut": (
        "shrink", lambda alg: die_after(os, "ftruncate")),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("boundary", sorted(BOUNDARIES))
def test_a_kill_at_each_step_of_a_resize_leaves_a_segment_that_opens(
    segment_name: tuple[Any, str], algorithm: str, boundary: str
) -> None:
    cls, name = segment_name
    make(cls, name, algorithm)
    resize, arm = BOUNDARIES[boundary]
    if resize == "grow":
        sizes: Container[int] = {SIZE, SIZE + EXTRA}
    else:
        cls.grow(name, EXTRA)  # a free tail to give back
        sizes = range(SIZE + EXTRA + 1)  # before, or fitted (whatever the algorithm keeps)

    def child() -> None:
        arm(algorithm)
        if resize == "grow":
            cls.grow(name, EXTRA)
        else:
            cls.shrink_to_fit(name)

    status = in_child(child)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
        f"the child was not killed at {boundary!r} (status {status:#x})"
    assert_settled(cls, name, sizes)
    # and the segment resizes normally afterwards
    cls.grow(name, EXTRA)
    assert_settled(cls, name, range(SIZE + 2 * EXTRA + 1))


def resize_forever(cls: Any, name: str) -> None:
    while True:
        cls.grow(name, EXTRA)
        cls.shrink_to_fit(name)


def kill_resizes_at_random(cls: Any, name: str, algorithm: str, kills: int) -> None:
    make(cls, name, algorithm)
    rng = random.Random(f"{cls.__name__}-{algorithm}")
    for _ in range(kills):
        pid = os.fork()
        if pid == 0:  # never returns into pytest
            try:
                resize_forever(cls, name)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0, 0.03))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), "the resizing child ended on its own (it failed)"
        assert_settled(cls, name, range(1 << 40))  # how far it got is not the point


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_kills_at_random_moments_of_resizes(segment_name: tuple[Any, str], algorithm: str) -> None:
    kill_resizes_at_random(*segment_name, algorithm, RANDOM_KILLS)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_many_kills_at_random_moments_of_resizes(
    segment_name: tuple[Any, str], algorithm: str
) -> None:
    kill_resizes_at_random(*segment_name, algorithm, SLOW_RANDOM_KILLS)


# -- creation --------------------------------------------------------------------------------
def create(cls: Any, name: str) -> None:
    with cls(Mode.OPEN_OR_CREATE, name, SIZE) as seg:
        seg.find_or_construct(ctypes.c_int64, "MyInt", 42)


def kill_creations_at_random(cls: Any, name: str, kills: int) -> None:
    started = time.perf_counter()
    create(cls, name)
    cls.remove(name)
    span = time.perf_counter() - started  # how long one creation takes here
    rng = random.Random(cls.__name__)
    for _ in range(kills):
        pid = os.fork()
        if pid == 0:  # never returns into pytest
            try:
                create(cls, name)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, span))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        create(cls, name)  # never "not formatted ... remove it": it creates or opens
        assert_settled(cls, name, {SIZE})
        cls.remove(name)


def test_kills_during_creation_never_wedge_the_name(segment_name: tuple[Any, str]) -> None:
    kill_creations_at_random(*segment_name, CREATION_KILLS)


@pytest.mark.slow
def test_many_kills_during_creation(segment_name: tuple[Any, str]) -> None:
    kill_creations_at_random(*segment_name, SLOW_CREATION_KILLS)


def test_a_creator_that_died_before_formatting_is_taken_over(
    segment_name: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a creator killed right after ``O_CREAT | O_EXCL`` leaves (an empty object, no lock
    held) and one killed after sizing it (zeros): OPEN_ONLY still says it is not formatted,
    OPEN_OR_CREATE creates it again."""
    cls, name = segment_name
    _, path = cls.storage_class._path_of(name)
    monkeypatch.setattr("segalloc.backends.mapping.FORMAT_WAIT", 0.01)
    for left in (b"", bytes(SIZE // 2)):
        with open(path, "xb") as backing:
            backing.write(left)
        os.chmod(path, 0o600)
        with pytest.raises(Exception, match="not formatted"):
            cls(Mode.OPEN_ONLY, name)
        with cls(Mode.OPEN_OR_CREATE, name, SIZE) as seg:
            assert seg.storage.created and seg.get_size() == SIZE
            seg.construct(ctypes.c_int64, "MyInt", 42)
        assert_settled(cls, name, {SIZE})
        cls.remove(name)


def test_a_creator_overtaken_before_its_lock_opens_what_was_made(
    segment_name: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A creator between its ``O_CREAT | O_EXCL`` and its lock, while another opener takes the
    (empty) object over and formats it: the creator then must not format it again."""
    cls, name = segment_name
    real_fchmod = os.fchmod
    overtaken: list[bool] = []

    def fchmod_then_overtake(fd: int, mode: int) -> None:
        real_fchmod(fd, mode)
        if not overtaken:  # only the first creator is overtaken (the taker calls this too)
            overtaken.append(True)
            thread = threading.Thread(target=create, args=(cls, name))
            thread.start()
            thread.join()

    monkeypatch.setattr("segalloc.backends.mapping.os.fchmod", fchmod_then_overtake)
    with pytest.raises(FileExistsError, match="took its creation over"):
        cls(Mode.CREATE_ONLY, name, 2 * SIZE)
    assert_settled(cls, name, {SIZE})  # the taker's segment, formatted once
    cls.remove(name)
    overtaken.clear()
    with cls(Mode.OPEN_OR_CREATE, name, 2 * SIZE) as seg:  # open-or-create opens it instead
        assert not seg.storage.created and seg.get_size() == SIZE
    assert_settled(cls, name, {SIZE})
