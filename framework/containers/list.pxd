# Cython declarations augmenting list.py (pure-Python mode): constants as C values, the list's
# layout helpers as C methods.
from segalloc.containers.sequence cimport _Sequence
from segalloc.words cimport Words

cdef Py_ssize_t L_NEXT, L_PREV, L_LENGTH, L_VLEN, LIST_VALUE, LIST_VARIABLE_VALUE, _NODE_ENTRIES

cdef class _ListCore(_Sequence):
    cdef Py_ssize_t least_node(self) except -1
    cdef Py_ssize_t value_offset(self) noexcept
    cdef int check_node(self, Words w, Py_ssize_t node, Py_ssize_t position) except -1
    cdef int check_neighbour(self, Words w, Py_ssize_t node) except -1
    cdef Py_ssize_t node_at(self, Words w, Py_ssize_t position) except -1
    cdef (Py_ssize_t, Py_ssize_t) value_span(self, Words w, Py_ssize_t node) except *
    cdef Py_ssize_t new_node(self, Words w, bytes raw) except -1
