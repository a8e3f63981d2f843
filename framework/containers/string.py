"""``SegmentString``: UTF-8 text in a growable buffer (and the element type ``str``
stands for in the other containers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import cython

from segalloc.containers.buffers import BUFFER_HEADER_SIZE, _verify_buffer
from segalloc.containers.codecs import _StrCodec
from segalloc.containers.proxy import WORD, _caller_error, _Proxy
from segalloc.deep_check import Claim, register_segment_type
from segalloc.words import Words

if not cython.compiled:  # compiled, the C forms come from buffers.pxd
    from segalloc.containers.buffers import (
        B_CAPACITY,
        B_DATA,
        B_LENGTH,
        _release_buffer,
        _reserve,
    )

# ------------------------------------------------------------------------------------------
# SegmentString: UTF-8 text in a growable buffer
# ------------------------------------------------------------------------------------------

S_CHARS = 3
STRING_HEADER_SIZE = BUFFER_HEADER_SIZE + WORD


class SegmentString(_Proxy):
    """Mutable text in the segment, compared and sliced like ``str``.

    Stored as UTF-8 (any other process reads the same bytes); the code-point count is kept so
    ``len`` is O(1); indexing and slicing decode the text (O(n)).
    """

    __slots__ = ()
    _HEADER_SIZE = STRING_HEADER_SIZE
    _TYPE_ID = "SegmentString"
    _codec = _StrCodec()

    @classmethod
    def _checked_initial(cls, initial: Any) -> str:
        cls._codec.encode(initial)
        return str(initial)

    def _initialise(self, *initial: Any) -> None:
        self._release_header(self._words())
        if initial:
            self.assign(initial[0])

    def _release_header(self, w: Words) -> None:
        hw = self.segment_handle >> 3
        w[hw + B_DATA] = w[hw + B_LENGTH] = w[hw + B_CAPACITY] = w[hw + S_CHARS] = 0

    def _release_all(self) -> None:
        w = self._words()
        self._fields(w)  # checked before anything is freed
        _release_buffer(self, w)
        self._release_header(w)

    def _fields(self, w: Words) -> tuple[int, int, int]:
        """``(data, bytes, code points)``, checked against each other (UTF-8 takes one to four
        bytes a code point), the segment bounds and the allocated bytes."""
        hw = self.segment_handle >> 3
        data, nbytes, capacity = int(w[hw + B_DATA]), int(w[hw + B_LENGTH]), int(w[hw + B_CAPACITY])
        chars = int(w[hw + S_CHARS])
        if nbytes > capacity or data + capacity > len(self._buf) or (capacity and not data):
            raise self._corrupt(f"text buffer {data} of {capacity} bytes is outside the segment")
        if not chars <= nbytes <= 4 * chars:
            raise self._corrupt(f"{chars} code points cannot take {nbytes} bytes of UTF-8")
        self._checked_count(capacity, 1, "capacity")
        return data, nbytes, chars

    def _verify(self, w: Words, claim: Claim) -> None:
        hw = self.segment_handle >> 3
        data, nbytes, capacity = int(w[hw + B_DATA]), int(w[hw + B_LENGTH]), int(w[hw + B_CAPACITY])
        _verify_buffer(self, claim, data, nbytes, capacity, 1)
        self._snapshot()

    def _snapshot(self) -> str:
        data, nbytes, chars = self._fields(self._words())
        try:
            text: str = self._codec.decode(self._buf, data, nbytes)
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"text is not UTF-8: {exc}") from None
        if len(text) != chars:
            raise self._corrupt(f"the text has {len(text)} code points, its length says {chars}")
        return text

    def _store(self, w: Words, text: str, keep: int = 0) -> None:
        """Make the text ``text``, whose first ``keep`` bytes are already in place."""
        raw = self._codec.encode(text)
        data = _reserve(self, w, 1, len(raw))
        self.segment.write(data + keep, raw[keep:])
        hw = self.segment_handle >> 3
        w[hw + B_LENGTH] = len(raw)
        w[hw + S_CHARS] = len(text)

    def _edit(self, text: object, change: Callable[[str], str]) -> None:
        """Apply ``change(old_text) -> new_text`` all or nothing."""
        if not isinstance(text, str):
            raise TypeError(f"SegmentString holds str, not {type(text).__name__}")
        with self._changing():
            w = self._words()
            self._store(w, change(self._snapshot()))

    # -- reading ---------------------------------------------------------------------------
    def __str__(self) -> str:
        with self._reading():
            return self._snapshot()

    def __len__(self) -> int:
        with self._reading():
            return self._fields(self._words())[2]

    def __getitem__(self, index: int | slice) -> str:
        return str(self)[index]

    def __iter__(self) -> Iterator[str]:
        return iter(str(self))

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and text in str(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, SegmentString)):
            return str(self) == str(other)
        return NotImplemented

    def encode(self) -> bytes:
        """The stored UTF-8 bytes."""
        return self._codec.encode(str(self))

    # -- changing --------------------------------------------------------------------------
    def assign(self, text: str) -> None:
        """Replace the whole text; ``BadAlloc`` changes nothing."""
        self._edit(text, lambda _old: text)

    def append(self, text: str) -> None:
        """Add ``text`` at the end, writing only the new bytes."""
        if not isinstance(text, str):
            raise TypeError(f"SegmentString holds str, not {type(text).__name__}")
        with self._changing():
            w = self._words()
            used = int(w[(self.segment_handle >> 3) + B_LENGTH])
            self._store(w, self._snapshot() + text, keep=used)

    def __iadd__(self, text: str) -> SegmentString:
        self.append(text)
        return self

    def insert(self, index: int, text: str) -> None:
        """Insert ``text`` before code point ``index`` (clamped, as ``list.insert``)."""
        self._edit(text, lambda old: old[:index] + text + old[index:])

    def __delitem__(self, index: int | slice) -> None:
        def without(old: str) -> str:
            chars = list(old)
            try:
                del chars[index]
            except IndexError as exc:
                raise _caller_error(IndexError(str(exc))) from None
            return "".join(chars)

        self._edit("", without)

    def clear(self) -> None:
        """Make the text empty and free its buffer."""
        with self._changing():
            self._release_all()


register_segment_type(SegmentString)
