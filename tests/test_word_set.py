"""``segalloc.word_set.WordSet`` (the words a transaction logged) behaves as a ``set`` of ints,
through growth, removal inside probe runs and clearing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segalloc.word_set import WordSet

#: few distinct indexes (collisions and long probe runs) or any index a segment may have
INDEXES = st.one_of(st.integers(0, 40), st.integers(0, (1 << 62) - 1))
STEPS = st.lists(st.tuples(st.sampled_from(["add", "discard", "clear"]), INDEXES), max_size=400)


@given(STEPS)
def test_a_word_set_answers_as_a_set_after_any_steps(steps: list[tuple[str, int]]) -> None:
    words, model = WordSet(), set[int]()
    for step, index in steps:
        if step == "add":
            assert words.add(index) is (index not in model)
            model.add(index)
        elif step == "discard":
            words.discard(index)
            model.discard(index)
        else:
            words.clear()
            model.clear()
        assert len(words) == len(model)
    assert all(index in words for index in model)
    assert not any(index in words for index in range(41) if index not in model)


def test_a_word_set_grows_past_its_first_table_and_clears_back() -> None:
    words = WordSet()
    assert all(words.add(8 * index) for index in range(10_000))
    assert not words.add(8 * 9_999) and len(words) == 10_000
    for index in range(0, 10_000, 2):
        words.discard(8 * index)
    assert len(words) == 5_000 and 0 not in words and 16 not in words and 8 in words
    assert all((8 * index in words) is bool(index % 2) for index in range(10_000))
    words.clear()
    assert len(words) == 0 and 8 * 9_999 not in words and words.add(8 * 9_999)


def test_a_word_set_refuses_a_negative_index_and_never_holds_odd_keys() -> None:
    words = WordSet()
    with pytest.raises(ValueError, match="negative"):
        words.add(-1)
    assert -1 not in words and "1" not in words and 1 << 70 not in words
    words.discard(-5)
    assert len(words) == 0
