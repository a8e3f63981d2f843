# Cython declarations augmenting buffers.py (pure-Python mode): the header's words as C
# values, the helpers as C functions (cpdef: the interpreted callers import them too).
from segalloc.containers.proxy cimport _Proxy
from segalloc.words cimport Words

cdef Py_ssize_t B_DATA, B_LENGTH, B_CAPACITY, _MIN_CAPACITY

cpdef Py_ssize_t _reserve(_Proxy proxy, Words w, Py_ssize_t elem_size,
                          Py_ssize_t needed) except -1
cpdef void _release_buffer(_Proxy proxy, Words w) except *
