"""``segalloc check`` and ``segalloc inspect`` (``bench/inspect.py``): read-only, on files and
shared memory, sane, damaged, and not segments at all."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import segalloc
from segalloc import UNIQUE, Mode, plugins
from segalloc.bench.cli import main
from segalloc.bench.inspect import check, inspect

ALGORITHMS = sorted(plugins().algorithms)
SIZE = 64 * 1024


def populate(seg: Any) -> list[int]:
    """Objects and a few holes; the live raw blocks."""
    seg.construct(ctypes.c_int, "answer", 42)
    seg.construct(ctypes.c_double, UNIQUE, 1.5)
    seg.construct(ctypes.c_int64, "array", 7, count=16)
    handles = [seg.allocate(100 + n) for n in range(12)]
    for handle in handles[::2]:
        seg.deallocate(handle)
    return handles[1::2]


@pytest.fixture(params=ALGORITHMS)
def segment_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "segment.seg"
    with segalloc.ManagedMappedFile(Mode.CREATE_ONLY, str(path), SIZE,
                                     algorithm=request.param) as seg:
        populate(seg)
    return path


@pytest.fixture
def shm_segment() -> Iterator[str]:
    name = f"segalloc-inspect-{uuid.uuid4().hex}"
    with segalloc.ManagedSharedMemory(Mode.CREATE_ONLY, name, SIZE) as seg:
        populate(seg)
    try:
        yield name
    finally:
        segalloc.ManagedSharedMemory.remove(name)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_a_sane_file_exits_0_and_changes_nothing(
    segment_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(segment_file)
    code, out, err = run(capsys, "check", str(segment_file))
    assert (code, err) == (0, "") and "sane" in out
    assert digest(segment_file) == before


def test_inspect_reports_everything_and_changes_nothing(
    segment_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(segment_file)
    code, out, _ = run(capsys, "inspect", "--json", str(segment_file))
    report = json.loads(out)
    assert code == 0 and report["sane"] and report["problem"] is None
    assert report["header"]["total_size"] == SIZE
    assert report["algorithm"]["name"] == report["header"]["algorithm"]
    assert report["algorithm"]["ALIGNMENT"] > 0
    assert {obj["name"]: obj["count"] for obj in report["named_objects"]} == {"answer": 1,
                                                                                "array": 16}
    assert [obj["type_id"] for obj in report["unique_objects"]] == ["c_double"]
    free = report["free_blocks"]
    assert free["count"] >= 2 and free["largest"] <= free["total"] <= report["sizes"]["free"]
    assert free["fragmentation"] == pytest.approx(1 - free["largest"] / free["total"])
    assert sum(free["histogram"].values()) == free["count"]
    assert digest(segment_file) == before
    code, text, _ = run(capsys, "inspect", str(segment_file))
    assert code == 0 and "'answer'" in text and "fragmentation" in text


def test_shared_memory_by_name(shm_segment: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--json", "--shm", shm_segment)
    assert code == 0 and json.loads(out)["sane"] is True
    code, out, _ = run(capsys, "inspect", "--json", "--shm", shm_segment)
    assert code == 0 and json.loads(out)["storage"].startswith("<SharedMemoryStorage")
    code, out, _ = run(capsys, "check", "--json", "--shm", "/" + shm_segment)  # as shm_open spells it
    assert code == 0 and json.loads(out)["sane"] is True


def test_a_damaged_segment_fails_check_naming_the_fault(
    segment_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with segalloc.ManagedMappedFile(Mode.OPEN_READ_ONLY, str(segment_file)) as seg:
        (handle, _), *_ = seg.free_blocks()
    data = bytearray(segment_file.read_bytes())
    for word in range(handle, handle + 48, 8):  # the free block's header and links
        struct.pack_into("<Q", data, word, 2**64 - 8)
    segment_file.write_bytes(data)
    code, out, err = run(capsys, "check", str(segment_file))
    assert code == 1 and out == "" and "SegmentCorrupt" in err
    code, out, _ = run(capsys, "inspect", "--json", str(segment_file))
    report = json.loads(out)
    assert code == 1 and not report["sane"] and "SegmentCorrupt" in report["problem"]
    assert report["header"]["total_size"] == SIZE  # the undamaged parts are still shown


@pytest.mark.parametrize("content", [b"", b"not a segment at all\n" * 10, bytes(4096)],
                         ids=["empty", "text", "zeros"])
def test_a_file_that_is_not_a_segment_exits_1_with_a_message(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other"
    path.write_bytes(content)
    for command in ("check", "inspect"):
        code, out, err = run(capsys, command, str(path))
        assert code == 1 and "InvalidSegment" in err and "Traceback" not in err
    assert path.read_bytes() == content


def test_a_truncated_file_is_refused(segment_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    segment_file.write_bytes(segment_file.read_bytes()[: SIZE // 2])
    code, _, err = run(capsys, "check", str(segment_file))
    assert code == 1 and "backing object has" in err


def test_missing_segments_and_bad_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "check", str(tmp_path / "missing"))[0] == 1
    assert run(capsys, "check", "--shm", f"segalloc-missing-{uuid.uuid4().hex}")[0] == 1
    for argv in (["check"], ["inspect", "a-path", "--shm", "a-name"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2


def test_library_functions_on_an_external_buffer() -> None:
    buf = bytearray(SIZE)
    with segalloc.ManagedExternalBuffer(Mode.CREATE_ONLY, buf) as seg:
        populate(seg)
    with segalloc.ManagedExternalBuffer(Mode.OPEN_READ_ONLY, bytes(buf)) as seg:
        assert check(seg) is None
        report = inspect(seg)
    assert report["sizes"]["segment"] == SIZE and report["sizes"]["used"] > 0


def test_a_fifo_is_refused_without_blocking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def hung(*_: object) -> None:
        raise TimeoutError("opening the FIFO blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)  # before the fix, opening a FIFO read-only waited for a writer for ever
    try:
        for command in ("check", "inspect"):
            code, out, err = run(capsys, command, str(fifo))
            assert code == 1 and "FIFO, not a regular file" in err and "Traceback" not in err
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_check_waits_for_the_lock_a_few_seconds_by_default() -> None:
    from segalloc.bench.cli import LOCK_TIMEOUT, build_parser

    args = build_parser().parse_args(["check", "some.seg"])
    assert args.timeout == LOCK_TIMEOUT and 0 < LOCK_TIMEOUT <= 30
    assert build_parser().parse_args(["inspect", "x", "--timeout", "0.5"]).timeout == 0.5


def test_check_walks_the_containers_and_names_the_damaged_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A list whose ring runs in a cycle: the allocator's blocks are intact, so only the deep
    check sees it; ``check`` and ``inspect`` name the list."""
    path = tmp_path / "segment.seg"
    with segalloc.ManagedMappedFile(Mode.CREATE_ONLY, str(path), SIZE) as seg:
        populate(seg)
        lst = seg.construct(segalloc.SegmentList[ctypes.c_int], "numbers", [1, 2, 3, 4])
        first, _, _ = struct.unpack_from("<QQQ", seg.buffer, lst.segment_handle)
        second = struct.unpack_from("<Q", seg.buffer, first)[0]
        third = struct.unpack_from("<Q", seg.buffer, second)[0]
        struct.pack_into("<Q", seg.buffer, third, first)  # third -> first: a cycle
        struct.pack_into("<Q", seg.buffer, lst.segment_handle + 16, 12)  # that it runs round
        del lst
    code, out, err = run(capsys, "check", str(path))
    assert code == 1 and "named object 'numbers'" in err and "cycle" in err
    code, out, _ = run(capsys, "inspect", "--json", str(path))
    assert code == 1 and "named object 'numbers'" in json.loads(out)["problem"]
