# Cython declarations augmenting segregated_fit.py (pure-Python mode): constants as C values,
# the C layout of the algorithm, the block helpers as C functions.
cimport cython
from segalloc.intrinsics cimport bit_length, lowest_bit
from segalloc.kernel cimport AlgorithmKernel
from segalloc.words cimport Words

cdef Py_ssize_t SL_LOG2, SL_COUNT, SL_MASK, ALIGN_LOG2, ALIGN, WORD, SMALL_SPAN, MAP_BITS
cdef Py_ssize_t MIN_SPAN, MAX_ROWS, LAYOUT_VERSION, MAGIC
cdef Py_ssize_t C_MAGIC, C_SIZE, C_FREE, C_END, C_ROWS, C_TOP, C_FL_BITMAP, CONTROL_WORDS
cdef Py_ssize_t NEXT, PREV, FREE_BIT, PREV_FREE_BIT, LIVE_BIT, END_BIT, FLAG_BITS, SENTINEL
cdef Py_ssize_t LIVE_MASK, SPAN_ROUNDING, SPAN_MASK, ALIGN_MASK, ROW_BIAS, NOT_PREV_FREE
cdef Py_ssize_t MAX_REQUEST, NO_MEMORY
cdef Py_ssize_t EXPAND_FWD, EXPAND_BWD, SHRINKS, TRY_SHRINK_IN_PLACE, ALLOCATE_NEW, ZERO_MEMORY

cpdef Py_ssize_t span_for(Py_ssize_t size) except? -1
cpdef Py_ssize_t list_index(Py_ssize_t span) except? -1
cpdef Py_ssize_t search_index(Py_ssize_t span) except? -1

cdef class _Tlsf(AlgorithmKernel):
    cdef readonly object _buf
    cdef readonly Py_ssize_t _start, control, end_word, free_word, top_word, fl_map, row_maps
    cdef readonly Py_ssize_t rows, heads, max_index, first

    @cython.final
    cdef inline Py_ssize_t list_of(self, Py_ssize_t span) noexcept
    @cython.final
    cdef inline void insert_free(self, Py_ssize_t h, Py_ssize_t index) except *
    @cython.final
    cdef inline void remove_free(self, Py_ssize_t h, Py_ssize_t index) except *
    @cython.final
    cdef inline Py_ssize_t find_list(self, Py_ssize_t index) except? -2
    @cython.final
    cdef inline void make_free(self, Py_ssize_t h, Py_ssize_t span) except *
    @cython.final
    cdef inline Py_ssize_t take_free(self, Py_ssize_t h) except? -1
    @cython.final
    cdef inline void release(self, Py_ssize_t h, Py_ssize_t span, bint prev_free) except *
    @cython.final
    cdef inline void use_free(self, Py_ssize_t h, Py_ssize_t found, Py_ssize_t span) except *
    @cython.final
    cdef inline bint trim(self, Py_ssize_t h, Py_ssize_t new_span) except -1
    @cython.final
    cdef inline void give_front(self, Py_ssize_t h, Py_ssize_t taken) except *
    @cython.final
    cdef inline Py_ssize_t live_header(self, Py_ssize_t offset) except? -1
    @cython.final
    cdef inline Py_ssize_t free_block_at(self, Py_ssize_t h) except? -1
    @cython.final
    cdef inline void take_next(self, Py_ssize_t h, Py_ssize_t wanted) except *
    @cython.final
    cdef inline Py_ssize_t shrink(self, Py_ssize_t flags, Py_ssize_t h, Py_ssize_t limit_size,
                                  Py_ssize_t preferred_size) except -2
    @cython.final
    cdef inline Py_ssize_t expand(self, Py_ssize_t flags, Py_ssize_t h, Py_ssize_t least,
                                  Py_ssize_t wanted) except -2
    @cython.final
    cdef inline Py_ssize_t expanded(self, Py_ssize_t flags, Py_ssize_t h, Py_ssize_t old_h,
                                    Py_ssize_t old_end) except -2
    @cython.final
    cdef inline Py_ssize_t take_oversized(self, Py_ssize_t span) except -2
    @cython.final
    cdef inline Py_ssize_t usable(self, Py_ssize_t offset) except? -1
