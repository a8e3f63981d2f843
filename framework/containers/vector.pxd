# Cython declarations augmenting vector.py (pure-Python mode): the vector's layout helpers as
# C methods.
from segalloc.containers.buffers cimport B_CAPACITY, B_DATA, B_LENGTH, _release_buffer, _reserve
from segalloc.containers.sequence cimport _Sequence
from segalloc.words cimport Words

cdef class _VectorCore(_Sequence):
    cdef (Py_ssize_t, Py_ssize_t) span(self, Words w) except *
    cdef int write_from(self, Words w, Py_ssize_t start, bytes raw, Py_ssize_t length) except -1
