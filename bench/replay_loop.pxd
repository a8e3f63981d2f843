# Cython declarations augmenting replay_loop.py (pure-Python mode): the C clock, the constants
# as C values, the loop's C layout and its per-operation helpers as C methods.
cimport cython
from posix.types cimport clockid_t
from posix.time cimport CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID, clock_gettime, timespec

from segalloc.kernel cimport AlgorithmKernel

cdef inline long long clock_ns(clockid_t clock) noexcept nogil:
    """``clock`` in nanoseconds."""
    cdef timespec t
    clock_gettime(clock, &t)
    return t.tv_sec * 1000000000LL + t.tv_nsec

cdef inline long long now_ns() noexcept nogil:
    """CLOCK_MONOTONIC (time.perf_counter_ns's clock on Linux)."""
    return clock_ns(CLOCK_MONOTONIC)

cdef inline long long cpu_now_ns() noexcept nogil:
    """The calling thread's CPU time (time.thread_time_ns's clock)."""
    return clock_ns(CLOCK_THREAD_CPUTIME_ID)

cdef Py_ssize_t ALLOC_OP, FREE_OP, SHRINK, EXPAND, UNBOUND

@cython.final
cdef class ReplayLoop:
    cdef readonly object codes, idents, sizes, aligns, offsets, held
    cdef readonly object alg
    cdef AlgorithmKernel kernel
    cdef unsigned char[::1] buf
    cdef readonly Py_ssize_t limit
    cdef public Py_ssize_t high_water, raised_at
    cdef readonly list failed

    cdef inline Py_ssize_t allocate(self, Py_ssize_t size, Py_ssize_t align) except -2
    cdef inline int deallocate(self, Py_ssize_t off) except -1
    cdef int shrink(self, Py_ssize_t off, Py_ssize_t old, Py_ssize_t size) except -1
    cdef Py_ssize_t expand(self, Py_ssize_t off, Py_ssize_t size) except -2
    cdef Py_ssize_t reallocate(self, Py_ssize_t off, Py_ssize_t old, Py_ssize_t size) except -2
