# The C layout of WordSet (word_set.py, pure-Python mode).
cimport cython
from segalloc.intrinsics cimport fill_all_ones

@cython.final
cdef class WordSet:
    cdef long long[::1] _table, _first_table
    cdef Py_ssize_t _bits, _mask, _count

    cdef void _resize(self, Py_ssize_t bits) except *
    cdef inline Py_ssize_t _home(self, long long index) noexcept
    cdef inline Py_ssize_t _slot_of(self, long long index) noexcept
    cpdef bint add(self, long long index) except -1
    cdef void _grow(self) except *
    cpdef void discard(self, long long index) except *
    cpdef bint holds(self, long long index) except -1
    cpdef void clear(self) except *
