# Cython declarations augmenting names.py (pure-Python mode): the C layout of NameIndex, its
# lookup helpers as C methods, and zlib's CRC-32 for the key hash.
from segalloc.words cimport Words

cdef Py_ssize_t _ENTRY_BYTES, _MAGIC, _UNCHECKED

cdef extern from "zlib.h":
    unsigned long zlib_crc32 "crc32" (unsigned long crc, const unsigned char* buf,
                                      unsigned int length) nogil

cdef inline Py_ssize_t name_crc(bytes name, Py_ssize_t seed) noexcept:
    # zlib.crc32(name, seed) for names under 4 GiB (find refuses longer ones first)
    return zlib_crc32(<unsigned long>seed, <const unsigned char*>name, <unsigned int>len(name))

cdef class Entry:
    cdef readonly object offset, next, kind, count, elem_size, hash
    cdef readonly bint is_array
    cdef readonly bytes name
    cdef readonly str type_id

cdef class NameIndex:
    cdef public object buf, algorithm, safe_point
    cdef public Words words
    cdef public Py_ssize_t root

    cdef (Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t) root_fields(self) except *
    cdef Py_ssize_t linked_tag(self, Py_ssize_t offset, Py_ssize_t budget,
                               Py_ssize_t counted) except? -1
