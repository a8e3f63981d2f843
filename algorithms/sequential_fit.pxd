# Cython declarations augmenting sequential_fit.py (pure-Python mode): constants as C values,
# the C layout of the algorithm, the block helpers as C functions.
cimport cython
from segalloc.kernel cimport AlgorithmKernel
from segalloc.words cimport Words

# the layout constants as C constants, folded into the instructions (sequential_fit.py holds
# the same values for the interpreted build, and its layout comment says what each is)
cdef enum:
    UNIT = 16
    BLOCK_HEADER = 16
    SPLIT_MIN_REST = 32
    END_OF_LIST = 0
    HDR_MAGIC = 0
    HDR_SIZE = 1
    HDR_FREE_HEAD = 2
    HDR_ALLOCATED = 3
    HDR_MARK = 4
    HDR_RESERVED = 5
    HEADER_SIZE = 48
    BLK_SIZE = 0
    BLK_NEXT = 1
cdef Py_ssize_t FIRST_MARK, LAYOUT_VERSION, MAGIC, MAX_REQUEST
cdef Py_ssize_t ALLOCATE_NEW, EXPAND_FWD, EXPAND, SHRINK_IN_PLACE, SHRINKS, ZERO_MEMORY

cdef Py_ssize_t block_for(Py_ssize_t size) noexcept
cdef Py_ssize_t requested(object size) except -1

cdef class _Core(AlgorithmKernel):
    cdef readonly object _buf
    cdef readonly Py_ssize_t _start, control, first, buffer_size

    @cython.final
    cdef inline int set_block(self, Py_ssize_t blk, Py_ssize_t size, Py_ssize_t next_free) except -1
    @cython.final
    cdef inline Py_ssize_t link_after(self, Py_ssize_t prev) noexcept
    @cython.final
    cdef inline Py_ssize_t region_end(self) except -1
    @cython.final
    cdef inline Py_ssize_t blocks_end(self, Py_ssize_t end) noexcept
    @cython.final
    cdef inline Py_ssize_t free_before(self, Py_ssize_t blk, Py_ssize_t end) except -1
    @cython.final
    cdef inline Py_ssize_t next_free(self, Py_ssize_t blk) except -1
    @cython.final
    cdef inline Py_ssize_t first_fit(self, Py_ssize_t need, Py_ssize_t end) except -2
    @cython.final
    cdef inline Py_ssize_t largest_free(self, Py_ssize_t end) except -2
    @cython.final
    cdef inline Py_ssize_t check_free(self, Py_ssize_t blk, Py_ssize_t end) except -1
    @cython.final
    cdef inline Py_ssize_t offset_of(self, object offset) except -1
    @cython.final
    cdef inline Py_ssize_t block_of(self, Py_ssize_t offset, Py_ssize_t end) except -1
    @cython.final
    cdef inline Py_ssize_t live_prev(self, Py_ssize_t blk, Py_ssize_t end) except -1
    @cython.final
    cdef inline int add_allocated(self, Py_ssize_t delta) except -1
    @cython.final
    cdef inline Py_ssize_t split(self, Py_ssize_t blk, Py_ssize_t size, Py_ssize_t need, Py_ssize_t after) except -1
    @cython.final
    cdef inline Py_ssize_t take(self, Py_ssize_t prev, Py_ssize_t need) except -1
    @cython.final
    cdef inline int release(self, Py_ssize_t blk, Py_ssize_t size, Py_ssize_t prev, Py_ssize_t end) except -1
    @cython.final
    cdef inline bint expand_fwd(self, Py_ssize_t blk, Py_ssize_t limit_size, Py_ssize_t preferred_size, Py_ssize_t flags, Py_ssize_t end) except -1
    @cython.final
    cdef inline bint shrink(self, Py_ssize_t blk, Py_ssize_t limit_size, Py_ssize_t preferred_size, Py_ssize_t end) except -1
    @cython.final
    cdef inline Py_ssize_t allocate_between(self, Py_ssize_t limit_size, Py_ssize_t preferred_size, Py_ssize_t end) except -2
