"""The helpers every algorithm shares: flags, the damage guard, the argument checks."""

from __future__ import annotations

from typing import ClassVar

import pytest

from segalloc import Command, InvalidPointer, SegmentCorrupt
from segalloc.algorithm_common import (
    ALLOCATE_NEW,
    EXPAND,
    EXPAND_BWD,
    EXPAND_FWD,
    NOTHROW,
    SHRINK_IN_PLACE,
    SHRINKS,
    TRY_SHRINK_IN_PLACE,
    ZERO_MEMORY,
    check_grow,
    check_region,
    command_can_succeed,
    damage_is_corruption,
)
from segalloc.errors import BadAlloc


def test_flags_are_the_commands_as_plain_ints() -> None:
    pairs = {ALLOCATE_NEW: Command.ALLOCATE_NEW, EXPAND_FWD: Command.EXPAND_FWD,
             EXPAND_BWD: Command.EXPAND_BWD, SHRINK_IN_PLACE: Command.SHRINK_IN_PLACE,
             TRY_SHRINK_IN_PLACE: Command.TRY_SHRINK_IN_PLACE, NOTHROW: Command.NOTHROW,
             ZERO_MEMORY: Command.ZERO_MEMORY}
    for flag, command in pairs.items():
        assert type(flag) is int and flag == command.value
    assert EXPAND == Command.EXPAND_FWD | Command.EXPAND_BWD
    assert SHRINKS == Command.SHRINK_IN_PLACE | Command.TRY_SHRINK_IN_PLACE


class _Guarded:
    name: ClassVar[str] = "guarded"

    @damage_is_corruption
    def fails_with(self, error: BaseException) -> None:
        raise error


@pytest.mark.parametrize("damage", [IndexError("index out of range"), ValueError("bad"),
                                    OverflowError("too big")])
def test_damage_becomes_segment_corrupt_naming_the_algorithm_and_method(
        damage: BaseException) -> None:
    with pytest.raises(SegmentCorrupt, match="guarded: fails_with: .*damaged") as caught:
        _Guarded().fails_with(damage)  # type: ignore[arg-type]
    assert caught.value.__cause__ is damage


@pytest.mark.parametrize("error", [InvalidPointer("not a block"), BadAlloc("full"),
                                   SegmentCorrupt("named"), KeyError("other")])
def test_segalloc_errors_and_other_exceptions_pass_the_guard(error: BaseException) -> None:
    with pytest.raises(type(error)) as caught:
        _Guarded().fails_with(error)  # type: ignore[arg-type]
    assert caught.value is error


@pytest.mark.parametrize(("start", "size", "message"), [
    (-16, 4096, "start=-16"), (8, 4096, "start=8"), (16, 100, "size=100 is below"),
    (16, 8192, "does not fit"),
])
def test_check_region_names_the_bad_parameter(start: int, size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_region(4096, start, size, alignment=16, min_size=128)


def test_check_region_accepts_a_region_that_fits_exactly() -> None:
    check_region(4096, 16, 4080, alignment=16, min_size=128)


def test_check_grow() -> None:
    check_grow(100, 900, 1000)
    with pytest.raises(ValueError, match="extra=-1"):
        check_grow(-1, 900, 1000)
    with pytest.raises(ValueError, match="extra=101"):
        check_grow(101, 900, 1000)


@pytest.mark.parametrize(("flags", "limit", "preferred", "expected"), [
    (SHRINK_IN_PLACE, 100, 50, True),
    (SHRINK_IN_PLACE, 100, 100, True),
    (SHRINK_IN_PLACE, 50, 100, False),  # Boost: a failed command, which its template relies on
    (TRY_SHRINK_IN_PLACE, 50, 100, False),
    (EXPAND_FWD, 100, 200, True),
    (EXPAND_FWD | ALLOCATE_NEW, 200, 100, False),
    (ALLOCATE_NEW, 0, 0, True),
])
def test_command_can_succeed_follows_boosts_preconditions(
        flags: int, limit: int, preferred: int, expected: bool) -> None:
    assert command_can_succeed(flags, limit, preferred, 4096) is expected


@pytest.mark.parametrize("flags", [SHRINK_IN_PLACE, TRY_SHRINK_IN_PLACE | ALLOCATE_NEW, EXPAND_FWD,
                                   EXPAND_BWD])
def test_a_command_on_no_block_is_invalid_pointer(flags: int) -> None:
    """A shrink (served alone, whatever else is asked) or an expansion only names no block."""
    with pytest.raises(InvalidPointer, match="reuse=None"):
        command_can_succeed(flags, 10, 10, None)


def test_an_expansion_or_allocation_may_fall_back_to_a_new_block() -> None:
    assert command_can_succeed(EXPAND | ALLOCATE_NEW, 10, 10, None)
