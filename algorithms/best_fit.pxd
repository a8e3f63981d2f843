# Cython declarations augmenting best_fit.py (pure-Python mode): constants as C values, the C
# layout of the algorithm, the block helpers as C functions.
cimport cython
from segalloc.intrinsics cimport bit_length, lowest_bit
from segalloc.kernel cimport AlgorithmKernel
from segalloc.words cimport Words

cdef Py_ssize_t ALIGN, WORD, BLOCK_HEADER, BORROWED, PAYLOAD, MIN_BLOCK, END_MARKER
cdef Py_ssize_t MIN_BLOCK_REQUEST, MAX_SMALL_UNITS, MIN_SMALL_UNITS
cdef Py_ssize_t ALLOCATED, PREV_ALLOCATED, BOTH_ALLOCATED, FLAGS, SIZE_MASK
cdef Py_ssize_t H_MAGIC, H_SIZE, H_FREE, H_END, H_SMALL_UNITS, H_LAST_CLASS, H_TREEMAP
cdef Py_ssize_t H_BASE_TAIL, H_SUMMARY, H_SMALLMAP
cdef Py_ssize_t B_PREV_SIZE, B_SIZE, B_NEXT, B_PREV, B_CHILD0, B_CHILD1, B_PARENT
cdef Py_ssize_t BIN_LINKS, TRIE_LINKS, MIN_UNITS, TOP_BIT, MAX_WORD, MAX_REQUEST
cdef Py_ssize_t ALLOCATE_NEW, EXPAND, EXPAND_BWD, EXPAND_FWD, SHRINKS, TRY_SHRINK_IN_PLACE
cdef Py_ssize_t ZERO_MEMORY

cdef Py_ssize_t block_bytes(Py_ssize_t size) noexcept


cdef class _BestFit(AlgorithmKernel):
    cdef readonly object _buf
    cdef readonly Py_ssize_t _start, control, small_units, last_class, first_class, small_limit
    cdef readonly Py_ssize_t smallmap, summary, treemap, free_word, end_word, heads0, roots0
    cdef readonly Py_ssize_t _first

    @cython.final
    cdef inline Py_ssize_t put_bit(self, Py_ssize_t at, Py_ssize_t k, bint on) except? -1
    @cython.final
    cdef inline void ring_append(self, Py_ssize_t head, Py_ssize_t b) except *
    @cython.final
    cdef inline void ring_remove(self, Py_ssize_t b, Py_ssize_t nxt) except *
    @cython.final
    cdef inline void bin_insert(self, Py_ssize_t b, Py_ssize_t units) except *
    @cython.final
    cdef inline void bin_remove(self, Py_ssize_t b, Py_ssize_t units) except *
    @cython.final
    cdef inline Py_ssize_t find_bin(self, Py_ssize_t units) except? -2
    @cython.final
    cdef inline Py_ssize_t trie_class(self, Py_ssize_t size) noexcept
    @cython.final
    cdef inline Py_ssize_t top_bit(self, Py_ssize_t cls) noexcept
    @cython.final
    cdef inline void trie_insert(self, Py_ssize_t b, Py_ssize_t size) except *
    @cython.final
    cdef inline void trie_remove(self, Py_ssize_t b) except *
    @cython.final
    cdef inline Py_ssize_t trie_best(self, Py_ssize_t nb) except? -1
    @cython.final
    cdef inline void file_free(self, Py_ssize_t b, Py_ssize_t size) except *
    @cython.final
    cdef inline void unfile(self, Py_ssize_t b, Py_ssize_t size) except *
    @cython.final
    cdef inline bint is_wild(self, Py_ssize_t b, Py_ssize_t size) except -1
    @cython.final
    cdef inline void check_free(self, Py_ssize_t b, Py_ssize_t size) except *
    @cython.final
    cdef inline void hand_out(self, Py_ssize_t b, Py_ssize_t size) except *
    @cython.final
    cdef inline void carve(self, Py_ssize_t b, Py_ssize_t size, Py_ssize_t nb, bint wild) except *
    @cython.final
    cdef inline void release(self, Py_ssize_t b, Py_ssize_t size, bint prev_free) except *
    @cython.final
    cdef inline Py_ssize_t take(self, Py_ssize_t nb) except? -1
    @cython.final
    cdef inline Py_ssize_t take_large(self, Py_ssize_t nb) except? -1
    @cython.final
    cdef inline Py_ssize_t block_usable(self, Py_ssize_t b) except? -1
    @cython.final
    cdef inline Py_ssize_t offset_of(self, object offset) except? -1
    @cython.final
    cdef inline Py_ssize_t live_block(self, Py_ssize_t offset) except? -1
    @cython.final
    cdef inline bint split_off(self, Py_ssize_t b, Py_ssize_t keep) except -1
    @cython.final
    cdef inline Py_ssize_t shrink(self, Py_ssize_t b, Py_ssize_t limit, Py_ssize_t preferred, bint try_only) except -1
    @cython.final
    cdef inline Py_ssize_t expand(self, Py_ssize_t b, Py_ssize_t cmd, Py_ssize_t limit, Py_ssize_t preferred) except -1
