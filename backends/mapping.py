"""``MappedStorage``: what every backend over a named, ``mmap``-able object shares
(``segalloc.backends.mapped_file`` and ``segalloc.backends.shared_memory``): the five modes,
race-free creation, space reserved up front, the cross-process lock and the class-level
``remove`` / ``resize``.
It is not a plugin itself; each backend module subclasses it and registers the subclass.

Creation is race-free without a temporary name: the creator makes the object with
``O_CREAT | O_EXCL`` and takes the cross-process lock at once, and holds it until the segment
manager has formatted the bytes (the first locked section after creation ends that hold).
An opener maps the object only under the lock and only once its first bytes are not all zero;
it finds zeros only in the instant between the creator's ``open`` and its ``flock`` or when
the creator died half way, so it retries briefly and then gives up with ``InvalidSegment``.

Space is reserved with ``os.posix_fallocate`` when the object is made (and when it grows), so a
full device is an ``OSError`` then, never a ``SIGBUS`` on a later write into a page that has
no backing store.

``OPEN_READ_ONLY`` opens the object ``O_RDONLY`` and maps it privately (``MAP_PRIVATE``,
``mmap.ACCESS_COPY``), not with ``PROT_READ``. Objects and arrays found read-only must view the
live bytes (a copy would accept writes and lose them, and never see a writer's later changes),
and ctypes can lay an object only over writable memory; over a ``PROT_READ`` mapping any write
that slips past the guards (``memoryview(obj)`` of a ctypes object is writable, so is
``ctypes.memmove``) would be a ``SIGSEGV``. Over a private mapping such a write only dirties a
private page of this process: it never faults and never reaches the object (the kernel copies
the page first; the file is open read-only). The guards catch every ordinary write:
``buffer`` is a read-only view (a raw write raises ``TypeError``), the segment manager refuses
every change with ``ReadOnlySegment``, objects found are read-only twins of their types
(``segalloc.readonly``) and arrays are not writeable. ``object_buffer`` is the writable view
of the same mapping that the twins lie over. On Linux, pages of a private file mapping that
this process has not written are the object's page-cache pages, so a reader sees a writer's
later changes at once (a page dirtied through a bypass stops following them).
The price: a private writable mapping counts toward the commit charge for its whole size, so
under strict overcommit (``vm.overcommit_memory=2``) opening a very large object read-only can
fail with ``ENOMEM`` where a ``PROT_READ`` mapping would not.
``OPEN_COPY_ON_WRITE`` maps privately too, with a writable ``buffer``: this process sees its
own changes and the object never does. POSIX leaves unspecified whether a private mapping sees
later changes others make to pages it has not written (``mmap(2)``); Linux shows them.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import mmap
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from segalloc.errors import InvalidSegment
from segalloc.interfaces import Mode, Storage
from segalloc.locking import FileLock, process_locks

__all__ = ["MappedStorage"]

#: seconds an opener waits for a creator to finish formatting (tunable)
FORMAT_WAIT = 1.0
#: bound on open-or-create's create/open alternation while others create and remove the name
_NAME_ATTEMPTS = 100
#: a formatted segment has a non-zero byte among its first bytes (the header's magic)
_PROBE_BYTES = 8

_CREATING = (Mode.CREATE_ONLY, Mode.OPEN_OR_CREATE)
#: (open flags, mmap access) per mode; the others share the object read-write
_PRIVATE_ACCESS = {
    Mode.OPEN_READ_ONLY: (os.O_RDONLY, mmap.ACCESS_COPY),
    Mode.OPEN_COPY_ON_WRITE: (os.O_RDONLY, mmap.ACCESS_COPY),
}
_SHARED_ACCESS = (os.O_RDWR, mmap.ACCESS_WRITE)


def _check_size(size: object, what: str) -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"{what} must be an int, not {type(size).__name__}")
    if size <= 0:
        raise ValueError(f"{what} must be > 0, got {size}")
    return size


def _check_permissions(permissions: object) -> int:
    if not isinstance(permissions, int) or isinstance(permissions, bool):
        raise TypeError(f"permissions must be an int, not {type(permissions).__name__}")
    if not 0 <= permissions <= 0o777:
        raise ValueError(f"permissions must be in [0, 0o777], got {permissions:#o}")
    return permissions


def _still_named(path: str, fd: int) -> bool:
    """True when ``path`` still names the object ``fd`` refers to."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    return process_locks.key(named) == process_locks.key(os.fstat(fd))


class MappedStorage(Storage):
    """A named backing object mapped with ``mmap``; subclasses say how a name becomes a path."""

    named = True
    #: builds the cross-process lock from a descriptor of the backing object (pluggable)
    lock_factory: ClassVar[Callable[[int], FileLock]] = FileLock

    def __init__(
        self, name: str, path: str, mode: Mode, mapping: mmap.mmap, lock: FileLock, created: bool
    ) -> None:
        """Wrap a mapping made by ``open`` (use ``open``)."""
        self._name = name
        self._path = path
        self._mode = mode
        self._map = mapping
        self._objects_view = memoryview(mapping)
        read_only = mode is Mode.OPEN_READ_ONLY
        self._view = self._objects_view.toreadonly() if read_only else self._objects_view
        self._size = len(mapping)
        self._lock = lock
        self._identity = process_locks.key(os.fstat(lock.fd))
        self._created = created
        #: the creator holds the lock until the segment manager has formatted the bytes
        self._formatting = created
        self._closed = False

    # -- naming (what the subclasses differ in) -------------------------------------------
    @classmethod
    @abc.abstractmethod
    def _path_of(cls, name: Any) -> tuple[str, str]:
        """``(display name, path)`` of a validated name; ``TypeError``/``ValueError`` if bad."""

    # -- creating and opening ------------------------------------------------------------
    @classmethod
    def open(
        cls, mode: Mode, name: Any, size: int | None = None, *, permissions: int = 0o600
    ) -> MappedStorage:
        """``(mode, name, size=None, *, permissions=0o600)``: ``size`` bytes (required to
        create) under ``name``; a new object gets exactly ``permissions``, whatever the umask."""
        if not isinstance(mode, Mode):
            raise TypeError(f"mode must be a Mode, not {type(mode).__name__}")
        shown, path = cls._path_of(name)
        if mode in _CREATING:
            size = _check_size(size, "size")
            _check_permissions(permissions)
        elif size is not None:
            raise ValueError(f"size is given only to create a segment, not with {mode}")
        for _ in range(_NAME_ATTEMPTS):
            if mode in _CREATING:
                assert size is not None
                try:
                    return cls._create(shown, path, size, permissions)
                except FileExistsError:
                    if mode is Mode.CREATE_ONLY:
                        raise
            try:
                return cls._attach(shown, path, mode)
            except FileNotFoundError:
                if mode is not Mode.OPEN_OR_CREATE:
                    raise
        raise OSError(errno.EAGAIN, "others keep creating and removing it", path)

    @classmethod
    def _create(cls, shown: str, path: str, size: int, permissions: int) -> MappedStorage:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, permissions)
        lock, held = None, False
        try:
            os.fchmod(fd, permissions)
            lock = process_locks.share(fd, cls.lock_factory)
            held = lock.acquire()
            os.posix_fallocate(fd, 0, size)
            mapping = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE)
        except BaseException:
            os.unlink(path)  # before the lock goes, so no opener maps what is being undone
            if lock is not None:
                if held:
                    lock.release()
                process_locks.unshare(lock)
            raise
        finally:
            os.close(fd)
        return cls(shown, path, Mode.CREATE_ONLY, mapping, lock, created=True)

    @classmethod
    def _attach(cls, shown: str, path: str, mode: Mode) -> MappedStorage:
        flags, access = _PRIVATE_ACCESS.get(mode, _SHARED_ACCESS)
        fd = os.open(path, flags | os.O_CLOEXEC)
        try:
            lock = process_locks.share(fd, cls.lock_factory)
            try:
                mapping = cls._map_when_formatted(path, fd, lock, access)
            except BaseException:
                process_locks.unshare(lock)
                raise
        finally:
            os.close(fd)
        return cls(shown, path, mode, mapping, lock, created=False)

    @staticmethod
    def _map_when_formatted(path: str, fd: int, lock: FileLock, access: int) -> mmap.mmap:
        """Map the object once its creator has formatted it (see the module docstring)."""
        deadline = time.monotonic() + FORMAT_WAIT
        pause = 0.0005
        while True:
            with lock:
                size = os.fstat(fd).st_size
                if size and any(os.pread(fd, _PROBE_BYTES, 0)):
                    return mmap.mmap(fd, size, access=access)
            if not _still_named(path, fd):
                raise FileNotFoundError(errno.ENOENT, "removed while being opened", path)
            if time.monotonic() >= deadline:
                raise InvalidSegment(
                    f"{path} is empty: its creator has not formatted it (it may have died "
                    "while creating it; remove it and create it again)"
                )
            time.sleep(pause)
            pause = min(2 * pause, 0.05)

    # -- the Storage interface -----------------------------------------------------------
    @property
    def buffer(self) -> memoryview:
        return self._view

    @property
    def size(self) -> int:
        return self._size

    @property
    def object_buffer(self) -> memoryview:
        """The mapping's writable view (private in read-only mode: see the module docstring)."""
        return self._objects_view

    @property
    def base_alignment(self) -> int:
        return mmap.PAGESIZE

    @property
    def created(self) -> bool:
        return self._created

    @property
    def read_only(self) -> bool:
        return self._mode is Mode.OPEN_READ_ONLY

    @property
    def mode(self) -> Mode:
        """How the object was opened (``CREATE_ONLY`` when this storage made it)."""
        return self._mode

    def lock(self) -> AbstractContextManager[object]:
        if self._formatting:
            return self._formatting_section()
        return self._lock

    @contextlib.contextmanager
    def _formatting_section(self) -> Iterator[FileLock]:
        """The first section after creation, where the segment manager formats the bytes; its
        end also ends the hold taken at creation."""
        self._formatting = False
        try:
            with self._lock:
                yield self._lock
        finally:
            self._lock.release()

    def flush(self) -> None:
        """Write the changes through to the object (nothing to do for private mappings)."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        if self._mode not in _PRIVATE_ACCESS:
            self._map.flush()

    def close(self) -> None:
        """Unmap; idempotent. Objects still viewing the bytes keep the mapping alive (it goes
        with them), but this process no longer counts as mapping the object."""
        if self._closed:
            return
        self._closed = True
        if self._formatting:
            self._formatting = False
            self._lock.release()
        for view in (self._view, self._objects_view):
            with contextlib.suppress(BufferError):
                view.release()
        with contextlib.suppress(BufferError):
            self._map.close()
        process_locks.unshare(self._lock)

    def discard(self) -> None:
        """Close, and remove the object if this storage made it (a failed constructor's undo)."""
        self.close()
        if self._created:
            with contextlib.suppress(FileNotFoundError):
                if process_locks.key(os.stat(self._path)) == self._identity:
                    os.unlink(self._path)

    # -- the named object while unmapped ------------------------------------------------
    @classmethod
    def remove(cls, name: Any) -> bool:
        """Remove the object ``name``; False when there was none. Processes mapping it keep
        their mapping; the name is free at once."""
        _, path = cls._path_of(name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    @staticmethod
    def _refuse_if_mapped(path: str, stat: os.stat_result) -> None:
        if process_locks.holds(stat):
            raise BufferError(
                f"{path} is still mapped by this process: close every segment on it "
                "before growing or shrinking it"
            )

    @classmethod
    def check_unmapped(cls, name: Any) -> None:
        """``BufferError`` if a segment of this process maps ``name``."""
        _, path = cls._path_of(name)
        cls._refuse_if_mapped(path, os.stat(path))

    @classmethod
    def resize(cls, name: Any, new_size: int) -> None:
        """Set the size of the object ``name``, which no segment of this process may map
        (``BufferError`` otherwise: a mapping cannot follow). Growth reserves the space."""
        _, path = cls._path_of(name)
        _check_size(new_size, "new_size")
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            cls._refuse_if_mapped(path, os.fstat(fd))
            lock = cls.lock_factory(os.dup(fd))
            try:
                with lock:
                    if new_size > os.fstat(fd).st_size:
                        os.posix_fallocate(fd, 0, new_size)
                    else:
                        os.ftruncate(fd, new_size)
            finally:
                lock.close()
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"size={self._size}"
        return f"<{type(self).__name__} {self._name!r} {state} mode={self._mode.name}>"
