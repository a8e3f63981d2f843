# Cython declarations augmenting sequence.py (pure-Python mode): the C layout of _Sequence,
# its primitives as C methods the list and the vector override.
from segalloc.containers.codecs cimport _Codec
from segalloc.containers.proxy cimport _Proxy
from segalloc.words cimport Words

cdef Py_ssize_t _WORD

cdef class _Sequence(_Proxy):
    cdef readonly _Codec element
    cdef readonly Py_ssize_t element_size
    cdef readonly bint word_elements

    cdef (Py_ssize_t, Py_ssize_t) element_span(self, Words w, Py_ssize_t position) except *
    cdef list collect(self, Words w, bint decode)
    cdef int insert_raws(self, Words w, Py_ssize_t index, list raws) except -1
    cdef int put_raw(self, Words w, Py_ssize_t position, bytes raw) except -1
    cdef int delete_positions(self, Words w, list positions) except -1
    cdef int clear_header(self, Words w) except -1
    cdef object value(self, Words w, object buf, Py_ssize_t start, Py_ssize_t length, bint decode)
    cdef object value_at(self, Words w, Py_ssize_t position, bint decode)
    cdef Py_ssize_t position(self, Words w, object index) except -1
    cdef object answer(self, int question, Words w, object raw, Py_ssize_t tag)
