# Cython declarations augmenting words.py (pure-Python mode): the C layout of Words.
cimport cython
from segalloc.intrinsics cimport copy_bytes, next_change
from segalloc.word_set cimport WordSet
@cython.final
cdef class Words:
    cdef readonly object raw
    cdef readonly const long long[::1] signed
    cdef long long[::1] out
    cdef readonly const unsigned char[::1] octets
    cdef unsigned char[::1] octets_out
    cdef readonly bint readonly
    cdef readonly bint logging
    cdef readonly bint plain
    cdef readonly bint undoing
    cdef public WordSet logged
    cdef public Py_ssize_t first, limit, slots
    cdef public bint doomed
    cdef public object journal
    cdef readonly bint recording
    cdef readonly Py_ssize_t undo_count
    cdef long long[::1] undo_entries
    cdef readonly object observer

    cpdef int store(self, Py_ssize_t index, long long value) except -1
    cdef int store_logged(self, Py_ssize_t index, long long value) except -1
    cdef void _note_plain(self) noexcept
    cpdef void store_bytes(self, Py_ssize_t at, bytes data) except *
    cpdef void record_undo(self) except *
    cpdef void finish_undo(self, bint rollback) except *
    cdef int _keep_undo(self, Py_ssize_t index) except -1
    cdef void _grow_undo(self) except *
    cpdef void commit(self) except *
    cpdef int log(self, Py_ssize_t index) except -1

    @cython.initializedcheck(False)
    cdef inline int put(self, Py_ssize_t index, long long value) except -1:
        """store() inlined into compiled callers (the same fast path as words.py's store).
        ``plain`` and ``undoing`` imply a writable view, so ``out`` is set; the index is
        checked by one unsigned comparison here, or by ``_keep_undo``'s checked read of the
        old value, or by ``store_logged``."""
        if self.plain and value >= 0 and <size_t>index < <size_t>self.out.shape[0]:
            with cython.boundscheck(False):
                self.out[index] = value
            return 0
        if self.undoing and value >= 0:
            self._keep_undo(index)
            self.out[index] = value
            return 0
        return self.store_logged(index, value)
