# Cython declarations augmenting replay_loop.py (pure-Python mode): the C clock, the constants
# as C values, the loop's C layout and its per-operation helpers as C methods.
cimport cython
from posix.time cimport CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID, clock_gettime, timespec

from segalloc.kernel cimport AlgorithmKernel

cdef inline long long now_ns() noexcept nogil:
    """CLOCK_MONOTONIC in nanoseconds (time.perf_counter_ns's clock on Linux)."""
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return t.tv_sec * 1000000000LL + t.tv_nsec

cdef inline long long cpu_now_ns() noexcept nogil:
    """The calling thread's CPU time in nanoseconds (time.thread_time_ns's clock)."""
    cdef timespec t
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return t.tv_sec * 1000000000LL + t.tv_nsec

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

    cdef Py_ssize_t allocate(self, Py_ssize_t size, Py_ssize_t align) except -2
    cdef int deallocate(self, Py_ssize_t off) except -1
    cdef int shrink(self, Py_ssize_t off, Py_ssize_t old, Py_ssize_t size) except -1
    cdef Py_ssize_t expand(self, Py_ssize_t off, Py_ssize_t size) except -2
    cdef Py_ssize_t reallocate(self, Py_ssize_t off, Py_ssize_t old, Py_ssize_t size) except -2
