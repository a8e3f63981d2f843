# The C layout of _Proxy (proxy.py, pure-Python mode) and its section helpers.
from segalloc.core cimport SegmentCore
from segalloc.kernel cimport AlgorithmKernel
from segalloc.words cimport Words

cdef class _Proxy:
    cdef readonly SegmentCore segment
    cdef readonly Py_ssize_t segment_handle
    cdef readonly Py_ssize_t _generation
    cdef readonly object _read, _change

    cpdef Words current_words(self)
    cdef Py_ssize_t length(self, Words w) except -1
    cdef object read(self, int question, object raw, Py_ssize_t tag)
    cdef object answer(self, int question, Words w, object raw, Py_ssize_t tag)
    cdef object enter(self, bint write)
    cdef int leave(self, object lock) except -1
    cdef BaseException failed(self, object lock, BaseException error)
    cdef Py_ssize_t allocate(self, Py_ssize_t size) except -2
    cdef int deallocate(self, Py_ssize_t block) except -1
    cdef int journal_room(self, Words w, Py_ssize_t entries) except -1
