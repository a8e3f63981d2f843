"""The proxy every container shares: the segment and the handle, one segment operation per
call (``_Operation``), staleness and damage checks, the ring walk of the linked containers,
and the cached concrete classes (``_specialise``) of the generic ones.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import cython

from segalloc.containers.codecs import _Codec
from segalloc.deep_check import Claim, register_segment_type
from segalloc.errors import BadAlloc, InvalidPointer, SegallocError, SegmentCorrupt
from segalloc.journal import ENTRIES_PER_CALL, EXTENSION_ENTRIES, HEADROOM
from segalloc.kernel import NO_MEMORY
from segalloc.walks import LinkWalk
from segalloc.words import DIRTY_WORD, Words

if TYPE_CHECKING:
    from segalloc.core import SegmentCore
    from segalloc.interfaces import SegmentAccess
    from segalloc.kernel import AlgorithmKernel

#: a word is the unit of every link and counter
WORD = 8
#: what code that trusts a damaged word provokes (a word index past the view, a value no word
#: holds, a short buffer): inside a container operation it means ``SegmentCorrupt``
_DAMAGE = (IndexError, ValueError, OverflowError, struct.error)
#: tunable: a stored count whose items take at most this many bytes is used without asking the
#: allocator (the hot paths read counts on every operation); a lie that small costs little and
#: walks still detect cycles. Above it the count must fit in the allocator's used bytes.
_UNCHECKED_BYTES = 1 << 20
# the imported constants as C values
_DIRTY = cython.declare(cython.Py_ssize_t, DIRTY_WORD)
_PER_CALL = cython.declare(cython.Py_ssize_t, ENTRIES_PER_CALL)
_HEADROOM = cython.declare(cython.Py_ssize_t, HEADROOM)
_EXTENSION = cython.declare(cython.Py_ssize_t, EXTENSION_ENTRIES)
_NO_MEMORY = cython.declare(cython.Py_ssize_t, NO_MEMORY)


#: the read-only question every container answers (``_Proxy.read``): its element count
_LENGTH = cython.declare(cython.int, 0)
#: what an unlocked read that failed gives ``_Proxy.read`` (then it reads locked)
_TORN = object()

_ExceptionT = TypeVar("_ExceptionT", bound=BaseException)


def _caller_error(error: _ExceptionT) -> _ExceptionT:
    """Mark an ``IndexError``/``ValueError`` as the API's own answer to the caller (an index
    out of range, a value not found), so ``_Operation`` never mistakes it for damage."""
    setattr(error, _CALLER_MARK, True)
    return error


_CALLER_MARK = "_segalloc_caller_error"


class _Operation:
    """``with proxy._reading()`` / ``proxy._changing()``: one segment operation (the lock, and
    the journal transaction when changing) in which damage a walk trips over becomes
    ``SegmentCorrupt`` naming the container, inside the transaction, so it rolls back."""

    __slots__ = ("_access", "_proxy")

    def __init__(self, proxy: _Proxy, access: Any) -> None:
        self._proxy = proxy
        self._access = access

    def __enter__(self) -> None:
        self._access.__enter__()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: object) -> None:
        if (isinstance(error, _DAMAGE) and not isinstance(error, SegallocError)
                and not getattr(error, _CALLER_MARK, False)):
            corrupt = self._proxy._corrupt(f"a damaged link or size ({type(error).__name__}: "
                                           f"{error})")
            try:
                self._access.__exit__(type(corrupt), corrupt, trace)
            finally:
                raise corrupt from error
        self._access.__exit__(kind, error, trace)


# ------------------------------------------------------------------------------------------
# The proxy every container shares: segment, handle, views, staleness and write checks
# ------------------------------------------------------------------------------------------


@cython.cclass
class _Proxy:
    """A light handle on a container in a segment (the segment + the container's offset).

    Compiled (``proxy.pxd``), the fields are C fields and the section helpers (``enter``,
    ``leave``, ``failed``, ``current_words``) C methods, for the compiled containers' hot paths.
    """

    if TYPE_CHECKING:  # the C fields (proxy.pxd) and class constants, as type checkers see them
        #: bytes of the container's fixed header (its constructed object's data)
        _HEADER_SIZE: ClassVar[int]
        segment_attach_stores_nothing: ClassVar[bool]
        segment: SegmentAccess
        segment_handle: int
        _generation: int
        _read: _Operation
        _change: _Operation

    #: the type identity; None on an unspecialised generic (``SegmentList`` without ``[T]``)
    _TYPE_ID: ClassVar[str | None] = None

    def __init__(self, segment: SegmentAccess, handle: int) -> None:
        if not isinstance(handle, int) or handle < 0 or handle >= 1 << 62:
            raise InvalidPointer(f"container handle {handle!r} is not an offset")
        if handle % WORD:
            raise InvalidPointer(f"container handle {handle} is not word-aligned")
        self.segment = segment
        self.segment_handle = handle
        self._generation = segment.generation
        # made once: every operation enters one (they hold no state between uses)
        self._read = _Operation(self, segment.locked())
        self._change = _Operation(self, segment.transaction())

    # -- SegmentType protocol (framework/objects.py) ------------------------------------
    @classmethod
    def segment_sizeof(cls) -> int:
        """Bytes of the container's fixed header."""
        return cls._HEADER_SIZE

    @classmethod
    def segment_type_id(cls) -> str:
        """The identity stored with the object; names the element types."""
        if cls._TYPE_ID is None:
            raise TypeError(f"{cls.__name__} needs its element type, e.g. {cls.__name__}[c_int]")
        return cls._TYPE_ID

    @classmethod
    def segment_prepare(cls, *args: Any) -> tuple[Any, ...]:
        """The initial value, every element encoded once to check it before the segment
        allocates the container (an iterable is read once, into a list)."""
        if len(args) > 1:
            raise TypeError(f"{cls.__name__} takes at most one initial value, got {len(args)}")
        return (cls._checked_initial(args[0]),) if args else ()

    @classmethod
    def _checked_initial(cls, initial: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def segment_construct(cls, segment: SegmentAccess, offset: int, *args: Any) -> Any:
        """Initialise the header at ``offset``, fill it from ``args`` (``segment_prepare``d),
        return a proxy."""
        proxy = cls(segment, offset)
        proxy._initialise(*args)
        return proxy

    @classmethod
    def segment_attach(cls, segment: SegmentAccess, offset: int) -> Any:
        """A proxy for the container already built at ``offset``."""
        return cls(segment, offset)

    #: a proxy's constructor reads and stores nothing in the segment: ``find`` may attach one
    #: without the lock (``segalloc.objects.attach_stores_nothing``)
    segment_attach_stores_nothing = True

    @classmethod
    def segment_destroy(cls, segment: SegmentAccess, offset: int) -> None:
        """Free every node and buffer the container owns."""
        cls(segment, offset)._release_all()

    @classmethod
    def segment_verify(cls, segment: SegmentAccess, offset: int, claim: Claim) -> None:
        """The deep check: every link, length and table of the container at ``offset``, and a
        ``claim`` of every block it owns; ``SegmentCorrupt`` names the fault."""
        cls(segment, offset)._verify(segment.words, claim)

    def _initialise(self, *initial: Any) -> None:
        raise NotImplementedError

    def _release_all(self) -> None:
        raise NotImplementedError

    def _verify(self, w: Words, claim: Claim) -> None:
        raise NotImplementedError

    def _check_back_links(self, w: Words, nodes: list[int]) -> None:
        """Each node's PREV (word 1, lists and dicts alike) names the node before it, the
        header's the last: the ring is the same read both ways."""
        h = self.segment_handle
        before = h
        for node in [*nodes, h]:
            if w[(node >> 3) + 1] != before:
                raise self._corrupt(f"node {node} links back to {w[(node >> 3) + 1]}, not {before}")
            before = node

    # -- access (inside ``with segment.locked()`` / ``segment.transaction()``) -----------------
    #
    # Every operation runs as one segment operation: under the storage lock, after recovery of
    # what a dead process left, and inside the segment's journal transaction. Link and counter
    # words are written through the segment's word view and element bytes through
    # ``segment.write``, both logged when the segment has a journal (shared memory, files), so
    # a process killed mid-insert is rolled back whole. Nothing is cached across operations,
    # so a closed segment can unmap at once.

    def _words(self) -> Words:
        """The segment's word view, after checking the memory did not move since the proxy was
        made."""
        return self.current_words()

    def current_words(self) -> Words:
        """``_words`` for compiled callers (the typed view)."""
        core: SegmentCore = self.segment  # type: ignore[assignment]
        if self._generation != core.generation:
            raise InvalidPointer(
                f"this {type(self).__name__} proxy was taken before the segment's memory moved "
                f"(grow/shrink_to_fit); fetch it again with seg.get_object_from_handle("
                f"{type(self).__name__}, {self.segment_handle})"
            )
        return core._words

    def length(self, w: Words) -> cython.Py_ssize_t:
        """The container's element count, read from its header words."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.read(_LENGTH, None, 0)

    # -- reads: first without the lock, against the version word -----------------------------
    def read(self, question: cython.int, raw: Any, tag: cython.Py_ssize_t) -> Any:
        """The ``answer`` to a read-only ``question``: first without the lock, kept when the
        segment's version word says no writer came meanwhile (``SegmentCore.read_version``);
        otherwise, or when that read failed (a writer's half-done state may look like damage),
        as one locked operation, which gives the answer or the error a locked read gives."""
        core: SegmentCore = self.segment  # type: ignore[assignment]
        seen: cython.longlong = core.read_version()
        if seen >= 0:
            try:
                answer = self.answer(question, self.current_words(), raw, tag)
            except Exception:
                answer = _TORN
            if answer is not _TORN and core.read_holds(seen):
                return answer
        lock = self.enter(False)
        try:
            answer = self.answer(question, self.current_words(), raw, tag)
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904 (the cause is set when it is damage)
        self.leave(lock)
        return answer

    def answer(self, question: cython.int, w: Words, raw: Any, tag: cython.Py_ssize_t) -> Any:
        """What ``read`` asks, computed from the words alone (no stores): ``_LENGTH`` here; a
        container adds its own questions (``raw`` and ``tag``: their argument)."""
        if question == _LENGTH:
            return self.length(w)
        raise ValueError(f"{type(self).__name__} has no read-only question {question}")

    # -- the segment operation, for compiled hot paths (``_reading`` / ``_changing`` without
    # the ``with``): ``lock = self.enter(write)``, then ``self.leave(lock)``, or on any
    # exception ``raise self.failed(lock, exc)``
    def enter(self, write: cython.bint) -> Any:
        """Open the segment operation (``segment.transaction()`` when ``write``, else
        ``segment.locked()``); the lock, for ``leave`` / ``failed``."""
        core: SegmentCore = self.segment  # type: ignore[assignment]
        return core.enter_section(write, write)

    def leave(self, lock: Any) -> cython.int:
        """Close the operation opened by ``enter``: commit it."""
        core: SegmentCore = self.segment  # type: ignore[assignment]
        core.leave_section(lock, False)
        return 0

    def failed(self, lock: Any, error: BaseException) -> BaseException:
        """Close the operation opened by ``enter`` after ``error``: roll it back; the exception
        to raise (damage a walk tripped over becomes ``SegmentCorrupt``, as in ``_Operation``)."""
        core: SegmentCore = self.segment  # type: ignore[assignment]
        if (isinstance(error, _DAMAGE) and not isinstance(error, SegallocError)
                and not getattr(error, _CALLER_MARK, False)):
            corrupt = self._corrupt(f"a damaged link or size ({type(error).__name__}: {error})")
            corrupt.__cause__ = error
            error = corrupt
        core.leave_section(lock, True, error)
        return error

    # -- the one road to the allocator of the compiled containers (inside an operation) -------
    def allocate(self, size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """A block from the segment's algorithm (its C entry point when it has one), after a
        journal safe point; ``NO_MEMORY`` when there is no room."""
        core: SegmentCore = self.segment  # type: ignore[assignment]
        self.journal_room(core._words, _PER_CALL)
        if core._kernel is not None:
            kernel: AlgorithmKernel = core._kernel
            return kernel.kernel_allocate(size)
        block = core._alg.allocate(size)
        return _NO_MEMORY if block is None else block

    def deallocate(self, block: cython.Py_ssize_t) -> cython.int:
        """Free a block of the segment's algorithm, after a journal safe point."""
        core: SegmentCore = self.segment  # type: ignore[assignment]
        self.journal_room(core._words, _PER_CALL)
        if core._kernel is not None:
            kernel: AlgorithmKernel = core._kernel
            kernel.kernel_deallocate(block)
        else:
            core._alg.deallocate(block)
        return 0

    def journal_room(self, w: Words, entries: cython.Py_ssize_t) -> cython.int:
        """A journal safe point for ``entries`` more logged writes (``reserve_journal``),
        skipped when the current extent already holds what it would ask for."""
        if w.journal is None:
            return 0
        dirty: cython.Py_ssize_t = w.signed[_DIRTY]
        wanted: cython.Py_ssize_t = entries + _HEADROOM + (_EXTENSION if dirty else 0)
        if w.limit - dirty < wanted:
            self.segment.reserve_journal(entries)
        return 0

    @property
    def _buf(self) -> memoryview:
        """The segment's bytes, for reading elements (writes go through ``segment.write``)."""
        return self.segment.buffer

    def _reading(self) -> _Operation:
        return self._read

    def _changing(self) -> _Operation:
        return self._change

    def _checked_count(self, count: int, unit: int, what: str = "length") -> int:
        """A count read from the segment, refused unless ``count`` items of ``unit`` bytes fit
        in the bytes the allocator has handed out: nothing may size a walk or a Python object
        by a word that the segment's real contents do not back."""
        if count < 0 or count * unit > _UNCHECKED_BYTES:
            alg = self.segment.algorithm
            if count < 0 or count * unit > alg.size - alg.free_memory:
                raise self._corrupt(f"{what} {count} is more than the allocated blocks can hold")
        return count

    def _allocate_all(self, sizes: list[int]) -> list[int]:
        """One block per size, or ``BadAlloc`` with none of them kept."""
        if not sizes:
            return []
        self.segment.reserve_journal(ENTRIES_PER_CALL * len(sizes))
        blocks = self.segment.algorithm.allocate_many(sizes)
        if blocks is None:
            raise BadAlloc(f"no room for {len(sizes)} {type(self).__name__} nodes")
        return blocks

    def _corrupt(self, why: str) -> SegmentCorrupt:
        return SegmentCorrupt(f"{type(self).__name__} at {self.segment_handle}: {why}")

    def _ring(self, w: Words, length: int) -> list[int]:
        """The nodes of a circular list whose sentinel is the header (lists, and dicts'
        insertion order: the NEXT link is word 0 of the header and of every node), in order;
        ``length`` nodes exactly, no cycle, every link aligned. The list grows as the walk
        confirms nodes, so a lying length costs no memory."""
        h = self.segment_handle
        walk = LinkWalk(length, f"{type(self).__name__} at {h}: the chain", "its stored length")
        nodes: list[int] = []
        node = int(w[h >> 3])
        try:
            for _ in range(length):
                if node == h or node & (WORD - 1):
                    raise self._corrupt(f"bad link {node} after {len(nodes)} items")
                walk.step(node)
                nodes.append(node)
                node = int(w[node >> 3])
        except IndexError:
            raise self._corrupt(f"link {node} points outside the segment") from None
        if node != h:
            raise self._corrupt(f"the chain does not close after {length} items")
        return nodes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        try:
            with self._reading():
                shown = repr(self._snapshot())
        except (InvalidPointer, SegmentCorrupt, ValueError) as exc:
            shown = f"<unreadable: {exc}>"
        return f"{type(self).__name__}({shown})"

    def _snapshot(self) -> Any:
        raise NotImplementedError


def _specialise(base: type, key: tuple[object, ...], codecs: dict[str, _Codec]) -> type:
    """The cached concrete class of ``base`` for element types ``key``."""
    cached = _SPECIALISED.get((base, key))
    if cached is not None:
        return cached
    labels = ", ".join(codec.label for codec in codecs.values())
    ids = ",".join(codec.type_id for codec in codecs.values())
    name = f"{base.__name__}[{labels}]"
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__module__": base.__module__,
        "__qualname__": name,
        "_TYPE_ID": f"{base.__name__}[{ids}]",
        **{f"_{role}": codec for role, codec in codecs.items()},
    }
    cls = type(name, (base,), namespace)
    _SPECIALISED[(base, key)] = cls
    register_segment_type(cls)
    return cls


_SPECIALISED: dict[tuple[type, tuple[object, ...]], type] = {}
