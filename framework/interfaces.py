"""The two plugin interfaces: ``Storage`` (bytes) and ``MemoryAlgorithm`` (who owns which bytes).

Algorithms and segalloc.backends import only this module (and ``segalloc.errors``). Everything an
algorithm keeps lives inside the buffer it manages, as offsets, so that a byte copy of the
segment, another process or a later run sees exactly the same state.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol, TypeVar, cast

import pluggy

from segalloc.errors import InvalidPointer, SegmentCorrupt
from segalloc.words import Words

__all__ = ["Command", "MemoryAlgorithm", "Mode", "SegmentAccess", "Storage", "compiled_hookimpl",
           "hookimpl"]

#: marks a plugin module's ``segalloc_register_algorithms`` / ``segalloc_register_backends``
hookimpl = pluggy.HookimplMarker("segalloc")

_F = TypeVar("_F", bound=Callable[..., Any])


def compiled_hookimpl(function: _F) -> _F:
    """``hookimpl`` for a module that may run compiled (Cython): pluggy takes plain Python
    functions and static or class methods as hooks, and a compiled function is none of these,
    so the function is marked as a staticmethod (callable as the function itself)."""
    return cast(_F, hookimpl(staticmethod(function)))


class Mode(enum.Enum):
    """How a segment is opened (Boost's ``create_only``, ``open_only``, ...)."""

    CREATE_ONLY = "create_only"
    OPEN_ONLY = "open_only"
    OPEN_OR_CREATE = "open_or_create"
    OPEN_READ_ONLY = "open_read_only"
    OPEN_COPY_ON_WRITE = "open_copy_on_write"


class Command(enum.IntFlag):
    """Flags of ``allocation_command``, as Boost's ``boost::interprocess::allocation_type``."""

    ALLOCATE_NEW = 0x01
    EXPAND_FWD = 0x02
    EXPAND_BWD = 0x04
    SHRINK_IN_PLACE = 0x08
    TRY_SHRINK_IN_PLACE = 0x10
    NOTHROW = 0x20
    ZERO_MEMORY = 0x40


class Storage(abc.ABC):
    """A backend: gives the segment's bytes, a cross-process lock, and nothing else.

    ``buffer`` is a writable ``memoryview`` of format ``"B"`` over the whole segment (read-only
    in ``OPEN_READ_ONLY`` mode). Growth is backend specific (see each backend).
    """

    #: plugin id, as registered
    name: ClassVar[str]
    #: the user-facing class name mirroring Boost ("ManagedHeapMemory", ...)
    managed_class_name: ClassVar[str]
    #: True for backing objects found by name (shm, files): resized only while unmapped,
    #: through the class-level ``resizing`` and ``remove``
    named: ClassVar[bool] = False
    #: True when only this process's threads ever reach the bytes (heap, a caller's buffer):
    #: the lock then only excludes threads, and an allocation that runs whole in compiled code
    #: under the GIL, with no other thread inside a section, needs none (``SegmentCore``)
    in_process: ClassVar[bool] = False
    #: seconds an operation waits for the lock before ``LockTimeout`` (None: for ever; named
    #: backends honour it)
    lock_timeout: float | None = None
    #: what ``lock()`` returns for as long as this is set, which the segment then takes around
    #: each operation without calling ``lock()`` (a method call in Python costs an operation of
    #: a compiled segment as much as its allocator); None, the default: ask ``lock()`` each time
    steady_lock: AbstractContextManager[object] | None = None

    @classmethod
    @abc.abstractmethod
    def open(cls, *args: Any, **kwargs: Any) -> Storage:
        """Create or open the backing object from the user's arguments to the managed class.

        Heap: ``(size)``; external: ``(mode, buffer, size=None)``; shared memory and mapped
        files: ``(mode, name, size=None, *, permissions=0o600, trust_foreign=False,
        timeout=None)``.
        """

    @property
    @abc.abstractmethod
    def buffer(self) -> memoryview:
        """The whole segment as a flat byte view; invalid after a relocating ``grow``."""

    @property
    def size(self) -> int:
        """Bytes in the segment."""
        return len(self.buffer)

    @property
    def object_buffer(self) -> memoryview | None:
        """A writable view of the same bytes for ctypes objects to lie over (ctypes needs a
        writable buffer): ``buffer`` itself unless read-only. A read-only storage gives a view
        whose writes never reach the backing object and never fault (a private copy-on-write
        mapping), so objects found read-only read the live bytes, or None when it has none
        (objects found are then copies, refusing writes all the same)."""
        return None if self.read_only else self.buffer

    @property
    @abc.abstractmethod
    def base_alignment(self) -> int:
        """The power-of-two alignment of byte 0 of ``buffer`` in absolute memory."""

    @property
    @abc.abstractmethod
    def created(self) -> bool:
        """True when this storage object made the bytes (so the segment must be formatted)."""

    @property
    @abc.abstractmethod
    def read_only(self) -> bool:
        """True when writes through ``buffer`` are refused."""

    @abc.abstractmethod
    def lock(self) -> AbstractContextManager[object]:
        """A re-entrant lock excluding other threads and other processes of this segment."""

    @property
    def version_word(self) -> int:
        """The address of the lock's version word (``segalloc.robust``), outside the segment's
        bytes, which lets readers of other processes read without the lock; 0 (the default):
        readers lock."""
        return 0

    @abc.abstractmethod
    def flush(self) -> None:
        """Write changes through to the backing object (no-op for memory-only storage)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the mapping; idempotent. The backing object stays (see ``remove``)."""

    def discard(self) -> None:
        """Close and remove a backing object this storage created (a failed constructor's undo)."""
        self.close()

    @classmethod
    def remove(cls, name: str) -> bool:
        """Remove the named backing object; False when there was none. Named backends only."""
        raise NotImplementedError(f"{cls.__name__} has no named backing object")

    @classmethod
    def resizing(
        cls, name: Any, *, timeout: float | None = None, permissions: int = 0o600,
        trust_foreign: bool = False,
    ) -> AbstractContextManager[Callable[[int], None]]:
        """``with resizing(name) as set_size:`` holds the named object's lock and gives a
        ``set_size(new_size)``; ``BufferError`` while any process maps it. Named backends only."""
        raise NotImplementedError(f"{cls.__name__} has no named backing object")

    def grow_in_place(self, extra: int) -> None:
        """Append ``extra`` bytes while open; may relocate ``buffer``. Heap storage only."""
        raise NotImplementedError(f"{type(self).__name__} cannot grow while mapped")

    def truncate(self, new_size: int) -> None:
        """Drop the bytes past ``new_size`` while open. Heap storage only."""
        raise NotImplementedError(f"{type(self).__name__} cannot shrink while mapped")


class MemoryAlgorithm(abc.ABC):
    """An allocation algorithm managing ``[start, start + size)`` of a buffer.

    Instances are bound to one buffer (``format`` or ``attach`` make them); they hold only the
    buffer views and the start offset, never state of their own: every header, list, tree,
    bitmap and counter lives in the region as offsets. Offsets taken and returned are absolute
    offsets into the buffer (so relative to the segment start: handles).

    Callers (the segment manager) validate argument types and ranges before calling: sizes are
    non-negative ints, alignments powers of two. Algorithms report "no memory" with ``None``
    and raise ``InvalidPointer`` for an offset that is not a live block, changing nothing.
    """

    #: plugin id, stored in the segment header
    name: ClassVar[str]
    #: on-disk layout version, stored in the segment header
    layout_version: ClassVar[int]
    #: every returned offset is a multiple of this (relative to the segment start)
    ALIGNMENT: ClassVar[int]
    #: bookkeeping bytes each allocation costs beyond the request
    PAYLOAD_PER_ALLOCATION: ClassVar[int]
    #: the smallest region (bytes) ``format`` accepts
    MIN_SEGMENT_SIZE: ClassVar[int]

    #: The 64-bit word view of the whole buffer (``segalloc.words.Words(buf)``) through which
    #: every write to the algorithm's metadata goes after ``format`` (``words[i] = v``, or
    #: ``words.store(i, v)`` on a hot path). The segment replaces it with its own view of the
    #: same memory, which logs each write to the undo journal when the segment has one, so
    #: methods must read it from ``self`` on each call and must not write metadata any other
    #: way; user bytes (zeroing) may be written through a byte view.
    words: Words

    # -- binding -------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def format(cls, buf: memoryview, start: int, size: int) -> MemoryAlgorithm:
        """Write fresh metadata for an empty region and return the bound algorithm."""

    @classmethod
    @abc.abstractmethod
    def attach(cls, buf: memoryview, start: int) -> MemoryAlgorithm:
        """Bind to the metadata already in ``buf`` at ``start``; ``SegmentCorrupt`` if absurd."""

    # -- allocation ----------------------------------------------------------------------
    @abc.abstractmethod
    def allocate(self, size: int) -> int | None:
        """Offset of a block with at least ``size`` usable bytes, or None."""

    @abc.abstractmethod
    def deallocate(self, offset: int) -> None:
        """Free a live block; ``InvalidPointer`` (nothing changed) for anything else."""

    @abc.abstractmethod
    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        """Like ``allocate`` with ``offset % alignment == 0`` (alignment a power of two)."""

    @abc.abstractmethod
    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        """Boost's ``allocation_command``: returns ``(offset or None, received_size)``.

        ``ALLOCATE_NEW``: a new block of at least ``limit_size``, ``preferred_size`` if it can.
        ``EXPAND_FWD``/``EXPAND_BWD``: grow block ``reuse`` in place to at least ``limit_size``
        (``preferred_size`` if possible); backwards expansion returns a lower offset whose block
        covers the old one (data is not moved here: the segment manager moves it).
        ``SHRINK_IN_PLACE``: shrink ``reuse`` to a size in ``[preferred_size, limit_size]``.
        ``TRY_SHRINK_IN_PLACE``: the same, succeeding without change when it cannot shrink.
        Expansion is tried before ``ALLOCATE_NEW`` when both are given. As in Boost, a shrink
        whose ``preferred_size`` exceeds ``limit_size`` (or any other command whose
        ``limit_size`` exceeds ``preferred_size``) is a failed command, ``(None, 0)``
        (``segalloc.algorithm_common.command_can_succeed`` decides both). ``received_size`` is
        the usable size of the returned block (0 with a None offset). ``ZERO_MEMORY`` zeroes
        the bytes the caller did not have before. ``NOTHROW`` is the manager's concern.
        """

    def allocate_many(self, sizes: Iterable[int]) -> list[int] | None:
        """Allocate every size or none of them (``None`` when any fails)."""
        done: list[int] = []
        for size in sizes:
            offset = self.allocate(size)
            if offset is None:
                for taken in reversed(done):
                    self.deallocate(taken)
                return None
            done.append(offset)
        return done

    def deallocate_many(self, offsets: Iterable[int]) -> None:
        """Free every offset; all are validated first, so a bad one changes nothing."""
        offsets = list(offsets)
        if len(set(offsets)) != len(offsets):
            raise InvalidPointer("deallocate_many: the same offset is given twice")
        for offset in offsets:
            self.usable_size(offset)
        for offset in offsets:
            self.deallocate(offset)

    @abc.abstractmethod
    def usable_size(self, offset: int) -> int:
        """Payload bytes the live block at ``offset`` really has; ``InvalidPointer`` otherwise."""

    # -- region size ---------------------------------------------------------------------
    @abc.abstractmethod
    def grow(self, extra: int) -> None:
        """Take in ``extra`` bytes appended to the region (the buffer already has them)."""

    @abc.abstractmethod
    def shrink_to_fit(self) -> int:
        """Give back the free tail; return the new region size (the caller trims storage)."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The region's size in bytes (Boost's ``get_size`` less the segment header)."""

    @property
    @abc.abstractmethod
    def free_memory(self) -> int:
        """Free bytes, as Boost's ``get_free_memory``."""

    # -- checks and introspection (cold paths) ------------------------------------------
    @abc.abstractmethod
    def verify(self) -> None:
        """Walk every in-segment structure; raise ``SegmentCorrupt`` naming the first fault."""

    def check_sanity(self) -> bool:
        """Boost's ``check_sanity``: True when ``verify`` finds nothing wrong."""
        try:
            self.verify()
        except SegmentCorrupt:
            return False
        return True

    @abc.abstractmethod
    def all_memory_deallocated(self) -> bool:
        """True when no block is allocated."""

    @abc.abstractmethod
    def zero_free_memory(self) -> None:
        """Write zeros over every free byte that is not metadata, so that (as Boost's template
        tests) a block allocated afterwards from that memory reads all zeros: metadata a free
        block keeps in what becomes payload (links, tags) is zeroed when it is handed out."""

    @abc.abstractmethod
    def free_blocks(self) -> Iterator[tuple[int, int]]:
        """``(offset, size)`` of every free block, for fragmentation metrics."""

    @abc.abstractmethod
    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        """``(offset, usable_size)`` of every live block, in address order."""


class SegmentAccess(Protocol):
    """What an in-segment structure (the containers, a type registered with
    ``segalloc.deep_check.register_segment_type``) needs of the segment it lives in: the
    allocator (its one road to memory: the algorithm's calls, each after a journal safe point),
    the bytes and their word view, the locked and the journaled section, journal room,
    journaled writes, and the views it hands out. ``segalloc.Segment`` is one; structures
    type against this protocol, so they never import the segment (no import circle)."""

    #: bumped when the memory moves (``grow``): a proxy taken before refuses to be used
    generation: int

    @property
    def algorithm(self) -> MemoryAlgorithm: ...

    @property
    def buffer(self) -> memoryview: ...

    @property
    def words(self) -> Words: ...

    def locked(self) -> AbstractContextManager[None]: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def reserve_journal(self, entries: int = 0) -> None: ...

    def write(self, offset: int, data: bytes) -> None: ...

    def export_view(self, block: int, start: int, size: int) -> memoryview: ...

    def refuse_if_viewed(self, block: int, operation: str) -> None: ...
