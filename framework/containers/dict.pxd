# Cython declarations augmenting dict.py (pure-Python mode): constants as C values, the C
# layout of the dict's core, its layout helpers as C methods.
from segalloc.containers.codecs cimport _Codec
from segalloc.containers.proxy cimport _Proxy
from segalloc.intrinsics cimport same_bytes
from segalloc.words cimport Words

cdef Py_ssize_t D_NEXT, D_PREV, D_LENGTH, D_BUCKETS, D_COUNT, N_CHAIN, N_KEYTAG, N_VLEN
cdef Py_ssize_t NODE_KEY, HASH_MASK, _INSERT_ENTRIES, _UNCHECKED_ITEMS, _MIN_BUCKETS

cdef extern from "zlib.h":
    unsigned long zlib_crc32 "crc32" (unsigned long crc, const unsigned char* buf,
                                      unsigned int length) nogil

cdef inline Py_ssize_t key_crc(bytes raw_key) noexcept:
    # zlib.crc32(raw_key) for keys under 2 GiB (key_tag refuses longer ones first)
    return zlib_crc32(0, <const unsigned char*>raw_key, <unsigned int>len(raw_key))

cdef Py_ssize_t _round_up(Py_ssize_t n) noexcept
cdef Py_ssize_t key_tag(bytes raw_key) except -1

cdef class _DictCore(_Proxy):
    cdef readonly _Codec key_codec, value_codec
    cdef readonly bint word_values

    cdef Py_ssize_t bucket_count(self, Words w) except -1
    cdef Py_ssize_t bucket_word(self, Words w, Py_ssize_t tag) except -2
    cdef Py_ssize_t find_link(self, Words w, bytes raw_key, Py_ssize_t tag) except -2
    cdef Py_ssize_t value_offset(self, Words w, Py_ssize_t node) except -1
    cdef object value_at(self, Words w, Py_ssize_t node)
    cdef object answer(self, int question, Words w, object raw, Py_ssize_t tag)
    cdef object raw_key(self, object key)
    cdef int store_value(self, Words w, Py_ssize_t at, object value, object raw) except -1
    cdef object encoded_value(self, object value)
    cdef bint rehash(self, Words w, Py_ssize_t count) except -1
    cdef int check_ring_node(self, Words w, Py_ssize_t node) except -1
    cdef int set_item(self, Words w, bytes raw_key, object value, object raw) except -1
    cdef int add_node(self, Words w, Py_ssize_t node, Py_ssize_t tag) except -1
    cdef (Py_ssize_t, Py_ssize_t) ring_neighbours(self, Words w, Py_ssize_t node) except *
    cdef int replace_node(self, Words w, Py_ssize_t old, Py_ssize_t link, Py_ssize_t new) except -1
    cdef int remove_node(self, Words w, Py_ssize_t link) except -1
