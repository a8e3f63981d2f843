"""``MappedStorage``: what every backend over a named, ``mmap``-able object shares
(``segalloc.backends.mapped_file`` and ``segalloc.backends.shared_memory``): the five modes,
race-free creation, space reserved up front, the cross-process lock and the class-level
``remove`` / ``resizing``.
It is not a plugin itself; each backend module subclasses it and registers the subclass.

The object is the segment's bytes followed by the lock's trailer (``segalloc.locking.TRAILER``
bytes: the robust mutex every operation takes); ``size``, ``buffer`` and the mapping cover the
segment's bytes only, and ``resizing``'s ``set_size`` moves the trailer to the new end. An
object without a trailer (made before it existed) is all segment, locked with ``flock``.

Creation is race-free without a temporary name: the creator makes the object with
``O_CREAT | O_EXCL`` and takes the cross-process file lock (``flock``) at once, and holds it
until the segment manager has formatted the bytes (the first locked section after creation ends
that hold); openers probe under the file lock too, then operations take the mutex.
An opener maps the object only under the lock and only once its first bytes are not all zero;
it finds zeros only in the instant between the creator's ``open`` and its ``flock`` or when
the creator died half way. Holding the lock over an unformatted object proves the creator is
not formatting it, so an ``OPEN_OR_CREATE`` opener takes the creation over (resets the size,
keeps the lock until formatted); a creator that reaches its ``flock`` only after such a take-over
finds the object sized and steps back (``FileExistsError``, which open-or-create turns into
opening). Other modes retry briefly and then give up with ``InvalidSegment``.

Only regular files are opened (``O_NONBLOCK`` first, so a FIFO cannot block the open; then
``fstat``). The shared read-write modes refuse an object owned by another user, or writable by
group or others beyond ``permissions``, with ``PermissionError`` unless ``trust_foreign=True``:
whoever can write it can rewrite the metadata under us or truncate it. An object others may
write (opened with ``trust_foreign`` or a wider ``permissions``) has its size checked at every
operation, so a truncation by them is an ``InvalidSegment`` there, not a ``SIGBUS``; the limit:
a truncation during an operation, or an access through an object ``find`` returned (which
takes no lock), can still meet ``SIGBUS``. Objects only their owner may write are not checked:
only that user's (or root's) non-segalloc processes could truncate them.

``OPEN_READ_ONLY`` and ``OPEN_COPY_ON_WRITE`` map the segment privately (below), but the lock
maps the trailer shared through a read-write description when this user may write the object,
so readers exclude writers as before (a reader writes lock state, never the segment's bytes);
one that may not write it locks with ``flock``, which the mutex's holders do not wait for.

A process with a segment open on the object holds a shared record lock on it
(``segalloc.locking``), so ``resizing`` refuses with ``BufferError`` while any process has it
open. After ``close()`` the process no longer counts, even if objects it kept still view the
mapping (they keep it alive until they go).

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
import fcntl
import mmap
import os
import pwd
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from segalloc.errors import InvalidSegment
from segalloc.interfaces import Mode, Storage
from segalloc.locking import TRAILER, FileLock, mapping_pids, others_map, process_locks

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
#: the mode bits that let others than the owner write an object
_OTHERS_WRITE = 0o022
#: what an object that is not a regular file is, for the refusal
_KINDS = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
          stat.S_IFSOCK: "socket", stat.S_IFDIR: "directory"}


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


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    if not timeout >= 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout}")
    return float(timeout)


def _open_regular(path: str, flags: int) -> int:
    """A descriptor of the regular file ``path`` (``InvalidSegment`` for anything else); the
    open never blocks (a FIFO would wait for a writer)."""
    fd = os.open(path, flags | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            raise InvalidSegment(f"{path} is a {_KINDS.get(kind, 'special file')}, not a regular "
                                 "file: segments live only in regular files")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _check_ownership(path: str, fd: int, permissions: int) -> None:
    """``PermissionError`` unless this user owns the object and nobody else may write it
    beyond what ``permissions`` allows."""
    info = os.fstat(fd)
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.geteuid():
        raise PermissionError(
            errno.EPERM, f"owned by {_user(info.st_uid)}, not by this user "
            f"({_user(os.geteuid())}), mode {mode:#o}: another user could rewrite or truncate it "
            "under us; pass trust_foreign=True to open it anyway", path)
    foreign_writers = mode & _OTHERS_WRITE & ~permissions
    if foreign_writers:
        raise PermissionError(
            errno.EPERM, f"mode {mode:#o} lets {'group' if foreign_writers & 0o020 else 'others'}"
            f" write it (owner {_user(info.st_uid)}); pass permissions={mode:#o} (or "
            "trust_foreign=True) to open it anyway", path)


def _exposed(info: os.stat_result) -> bool:
    """True when others than this user may write (so truncate) the object."""
    return info.st_uid != os.geteuid() or bool(info.st_mode & _OTHERS_WRITE)


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
        self, name: str, path: str, mode: Mode, mapping: mmap.mmap, lock: FileLock, created: bool,
        timeout: float | None = None, exposed: bool = False,
    ) -> None:
        """Wrap a mapping made by ``open`` (use ``open``); ``exposed``: others than this user
        may write (so truncate) the object, so each operation checks its size first."""
        self._name = name
        self._path = path
        self._mode = mode
        self._map = mapping
        self._objects_view = memoryview(mapping)
        read_only = mode is Mode.OPEN_READ_ONLY
        self._view = self._objects_view.toreadonly() if read_only else self._objects_view
        self._size = len(mapping)
        self._lock = lock
        self._section = _Section(lock, timeout)
        if exposed:  # the mapping and the trailer after it
            lock.watch_size(self._size + (TRAILER if lock.mutex is not None else 0))
        #: what a section without a timeout enters (the bare mutex when it can)
        self._fast = lock.section_lock()
        self._identity = process_locks.key(os.fstat(lock.fd))
        self._created = created
        #: the creator holds the lock until the segment manager has formatted the bytes
        self._formatting = created
        self._closed = False
        self._note_steady_lock()

    # -- naming (what the subclasses differ in) -------------------------------------------
    @classmethod
    @abc.abstractmethod
    def _path_of(cls, name: Any) -> tuple[str, str]:
        """``(display name, path)`` of a validated name; ``TypeError``/``ValueError`` if bad."""

    # -- creating and opening ------------------------------------------------------------
    @classmethod
    def open(
        cls, mode: Mode, name: Any, size: int | None = None, *, permissions: int = 0o600,
        trust_foreign: bool = False, timeout: float | None = None,
    ) -> MappedStorage:
        """``(mode, name, size=None, *, permissions=0o600, trust_foreign=False, timeout=None)``:
        ``size`` bytes (required to create) under ``name``; a new object gets exactly
        ``permissions``, whatever the umask; ``OPEN_ONLY`` / ``OPEN_OR_CREATE`` refuse an object
        of another user or one others may write beyond ``permissions`` unless
        ``trust_foreign``; the lock waits at most ``timeout`` seconds (None: for ever)."""
        if not isinstance(mode, Mode):
            raise TypeError(f"mode must be a Mode, not {type(mode).__name__}")
        shown, path = cls._path_of(name)
        timeout = _check_timeout(timeout)
        _check_permissions(permissions)
        if mode in _CREATING:
            size = _check_size(size, "size")
        elif size is not None:
            raise ValueError(f"size is given only to create a segment, not with {mode}")
        trusted = None if trust_foreign or mode in _PRIVATE_ACCESS else permissions
        creation = (size, permissions) if mode is Mode.OPEN_OR_CREATE and size else None
        for _ in range(_NAME_ATTEMPTS):
            if mode in _CREATING:
                assert size is not None
                try:
                    return cls._create(shown, path, size, permissions, timeout)
                except FileExistsError:
                    if mode is Mode.CREATE_ONLY:
                        raise
            try:
                return cls._attach(shown, path, mode, trusted, timeout, creation)
            except FileNotFoundError:
                if mode is not Mode.OPEN_OR_CREATE:
                    raise
        raise OSError(errno.EAGAIN, "others keep creating and removing it", path)

    @classmethod
    def _create(
        cls, shown: str, path: str, size: int, permissions: int, timeout: float | None
    ) -> MappedStorage:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, permissions)
        lock, held = None, False
        try:
            os.fchmod(fd, permissions)
            lock = process_locks.share(fd, cls.lock_factory)
            lock.hold(timeout)
            held = True
            if os.fstat(fd).st_size:  # an opener took the creation over before our flock
                raise FileExistsError(errno.EEXIST, "another process took its creation over", path)
            mapping = MappedStorage._reserve(fd, lock, size)
        except BaseException as exc:
            if not isinstance(exc, FileExistsError):  # a taken-over object is not ours to undo
                os.unlink(path)  # before the lock goes, so no opener maps what is being undone
            if lock is not None:
                if held:
                    lock.unhold()
                process_locks.unshare(lock)
            raise
        finally:
            os.close(fd)
        return cls(shown, path, Mode.CREATE_ONLY, mapping, lock, created=True, timeout=timeout,
                   exposed=bool(permissions & _OTHERS_WRITE))

    @classmethod
    def _attach(
        cls, shown: str, path: str, mode: Mode, trusted: int | None, timeout: float | None,
        creation: tuple[int, int] | None,
    ) -> MappedStorage:
        """Open an existing object; ``trusted``: the permissions others' writes may not exceed
        (None: no ownership check); ``creation``: ``(size, permissions)`` to take over the
        creation of an object its creator died before formatting."""
        flags, access = _PRIVATE_ACCESS.get(mode, _SHARED_ACCESS)
        fd = _open_regular(path, flags)
        try:
            if trusted is not None:
                _check_ownership(path, fd, trusted)
            exposed = _exposed(os.fstat(fd))
            lock = process_locks.share(fd, cls.lock_factory)
            try:
                mapping, created = cls._map_when_formatted(path, fd, lock, access, timeout,
                                                           creation)
            except BaseException:
                process_locks.unshare(lock)
                raise
        finally:
            os.close(fd)
        if created:
            return cls(shown, path, Mode.CREATE_ONLY, mapping, lock, created=True, timeout=timeout,
                       exposed=exposed)
        return cls(shown, path, mode, mapping, lock, created=False, timeout=timeout, exposed=exposed)

    @staticmethod
    def _map_when_formatted(
        path: str, fd: int, lock: FileLock, access: int, timeout: float | None,
        creation: tuple[int, int] | None,
    ) -> tuple[mmap.mmap, bool]:
        """Map the object once its creator has formatted it, or take the creation over (see the
        module docstring); ``(mapping, taken over)``."""
        deadline = time.monotonic() + FORMAT_WAIT
        pause = 0.0005
        while True:
            with lock.holding(timeout):
                size = os.fstat(fd).st_size
                if size and any(os.pread(fd, _PROBE_BYTES, 0)):
                    return mmap.mmap(fd, lock.attach(size), access=access), False
                if creation is not None and _still_named(path, fd):
                    return MappedStorage._take_over(fd, lock, *creation), True
            if not _still_named(path, fd):
                raise FileNotFoundError(errno.ENOENT, "removed while being opened", path)
            if time.monotonic() >= deadline:
                raise InvalidSegment(
                    f"{path} is empty: its creator has not formatted it (it may have died "
                    "while creating it; open it with OPEN_OR_CREATE to create it again)"
                )
            time.sleep(pause)
            pause = min(2 * pause, 0.05)

    @staticmethod
    def _take_over(fd: int, lock: FileLock, size: int, permissions: int) -> mmap.mmap:
        """Create afresh an object whose creator died before formatting it; called holding the
        lock, which stays held (as a creator's) until the segment is formatted."""
        os.ftruncate(fd, 0)
        os.fchmod(fd, permissions)
        mapping = MappedStorage._reserve(fd, lock, size)
        lock.hold(None)  # re-entrant: the hold outlives the caller's section
        return mapping

    @staticmethod
    def _reserve(fd: int, lock: FileLock, size: int) -> mmap.mmap:
        """Give a new (empty) object ``size`` bytes and the lock's trailer after them, reserved;
        their mapping. Called holding the file lock."""
        os.posix_fallocate(fd, 0, size + TRAILER)
        lock.attach(size + TRAILER, fresh=True)
        return mmap.mmap(fd, size, access=mmap.ACCESS_WRITE)

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
    def version_word(self) -> int:
        # a copy-on-write opener's writes stay its own: it must not tell others' readers of them
        return 0 if self._mode in _PRIVATE_ACCESS else self._lock.version_word

    @property
    def mode(self) -> Mode:
        """How the object was opened (``CREATE_ONLY`` when this storage made it)."""
        return self._mode

    @property
    def lock_timeout(self) -> float | None:
        """Seconds an operation waits for the lock before ``LockTimeout`` (None: for ever)."""
        return self._section.timeout

    @lock_timeout.setter
    def lock_timeout(self, timeout: float | None) -> None:
        self._section.timeout = _check_timeout(timeout)
        self._note_steady_lock()

    def _note_steady_lock(self) -> None:
        """Keep ``steady_lock`` what ``lock()`` returns while that stays the same (formatted,
        open, no timeout: the shared lock), else None. Stored, not a property: the segment
        reads it around every operation, so each change of its inputs calls this."""
        steady = not (self._formatting or self._closed) and self._section.timeout is None
        self.steady_lock = self._fast if steady else None

    def lock(self) -> AbstractContextManager[object]:
        if self._formatting:
            return self._formatting_section()
        if self._section.timeout is None:
            return self._fast  # the plain shared lock (its mutex, when it can): the cheapest
        return self._section

    @contextlib.contextmanager
    def _formatting_section(self) -> Iterator[FileLock]:
        """The first section after creation, where the segment manager formats the bytes; its
        end also ends the hold taken at creation."""
        self._formatting = False
        self._note_steady_lock()
        try:
            with self._section:
                yield self._lock
        finally:
            self._lock.unhold()

    def flush(self) -> None:
        """Write the changes through to the object (nothing to do for private mappings)."""
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        if self._mode not in _PRIVATE_ACCESS:
            self._map.flush()

    def close(self) -> None:
        """Unmap and give the lock's descriptor back; idempotent. Objects still viewing the
        bytes keep the mapping alive until the last of them goes, but this process no longer
        counts as mapping the object: a peer may resize it, and their reads and writes take no
        lock (do not use them)."""
        if self._closed:
            return
        self._closed = True
        self._note_steady_lock()
        if self._formatting:
            self._formatting = False
            self._lock.unhold()
        for view in (self._view, self._objects_view):
            with contextlib.suppress(BufferError):
                view.release()
        with contextlib.suppress(BufferError):
            self._map.close()
        # the last object viewing the bytes frees the mapping (and the descriptor mmap keeps)
        del self._view, self._map
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

    @classmethod
    @contextlib.contextmanager
    def resizing(
        cls, name: Any, *, timeout: float | None = None, permissions: int = 0o600,
        trust_foreign: bool = False,
    ) -> Iterator[Callable[[int], None]]:
        """``with resizing(name) as set_size:`` holds ``name``'s lock (segments this process
        opens inside share it) and gives ``set_size(new_size)``, which sets the object's size
        (growth reserves the space). ``BufferError`` (at entry and at each ``set_size``) while
        any process has a segment open on it, this one included."""
        _, path = cls._path_of(name)
        timeout = _check_timeout(timeout)
        _check_permissions(permissions)
        fd = _open_regular(path, os.O_RDWR)
        try:
            if not trust_foreign:
                _check_ownership(path, fd, permissions)
            if process_locks.holds(os.fstat(fd)):
                raise BufferError(f"{path} is still mapped by this process: close every segment "
                                  "on it before growing or shrinking it")
            lock = process_locks.share(fd, cls.lock_factory)
            try:
                with lock.holding(timeout):
                    cls._refuse_if_mapped(path, lock.fd)

                    def set_size(new_size: int) -> None:
                        _check_size(new_size, "new_size")
                        cls._refuse_if_mapped(path, lock.fd)
                        lock.resize(new_size)
                        lock.watch_size(0)  # the next mapping watches the new size

                    yield set_size
            finally:
                process_locks.unshare(lock)
        finally:
            os.close(fd)

    @staticmethod
    def _refuse_if_mapped(path: str, fd: int) -> None:
        if others_map(fd):
            pids = mapping_pids(os.fstat(fd))
            pids = [pid for pid in pids if pid != os.getpid()]
            who = f"pid {', '.join(map(str, pids))}" if pids else "another process"
            raise BufferError(f"{path} is still mapped by {who}: every process must close it "
                              "before it is grown or shrunk")

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"size={self._size}"
        return f"<{type(self).__name__} {self._name!r} {state} mode={self._mode.name}>"


class _Section:
    """``with storage.lock():`` with a ``lock_timeout``: the shared ``FileLock`` (its mutex once
    attached), waited for at most ``timeout`` seconds."""

    __slots__ = ("_lock", "timeout")

    def __init__(self, lock: FileLock, timeout: float | None) -> None:
        self._lock = lock
        self.timeout = timeout

    def __enter__(self) -> FileLock:
        return self._lock.enter(self.timeout)

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
