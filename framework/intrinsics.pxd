# The compiled form of intrinsics.py: inline C over the compiler's bit-scan builtins.
cdef extern from *:
    """
    static inline Py_ssize_t segalloc_bit_length(long long x) {
        return x > 0 ? 64 - __builtin_clzll((unsigned long long)x) : 0;
    }
    static inline Py_ssize_t segalloc_lowest_bit(long long x) {
        return x ? __builtin_ctzll((unsigned long long)x) : -1;
    }
    """
    Py_ssize_t bit_length "segalloc_bit_length" (long long x) nogil
    Py_ssize_t lowest_bit "segalloc_lowest_bit" (long long x) nogil

# The byte compares and copy of intrinsics.py: memcmp / memcpy after the same bounds check.
from libc.string cimport memcmp, memcpy, memset

cdef inline bint same_bytes(const unsigned char[::1] view, Py_ssize_t at, bytes data) except -1:
    cdef Py_ssize_t n = len(data)
    if at < 0 or n > view.shape[0] - at:
        raise IndexError(f"bytes [{at}, {at + n}) are outside the segment")
    return n == 0 or memcmp(&view[at], <const char*>data, n) == 0

cdef inline Py_ssize_t next_change(const unsigned char[::1] view, Py_ssize_t at, bytes data,
                                   Py_ssize_t start) except -1:
    cdef Py_ssize_t n = len(data)
    cdef const char* new = <const char*>data
    cdef const char* old
    if at < 0 or n > view.shape[0] - at:
        raise IndexError(f"bytes [{at}, {at + n}) are outside the segment")
    if start >= n:
        return n
    old = <const char*>&view[at]
    if memcmp(old + start, new + start, n - start) == 0:
        return n
    while old[start] == new[start]:
        start += 1
    return start

cdef inline int copy_bytes(unsigned char[::1] out, Py_ssize_t at, bytes data) except -1:
    cdef Py_ssize_t n = len(data)
    if at < 0 or n > out.shape[0] - at:
        raise IndexError(f"bytes [{at}, {at + n}) are outside the segment")
    if n:
        memcpy(&out[at], <const char*>data, n)
    return 0

cdef inline void fill_all_ones(long long[::1] out) noexcept:
    if out.shape[0]:
        memset(&out[0], 0xff, 8 * out.shape[0])

# The thread lock of intrinsics.py: a PyThread lock, taken in C; a wait releases the GIL, in
# slices, so that signals are handled between them as Python's own lock does.
from cpython.pythread cimport (PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
                               PyThread_acquire_lock, PyThread_release_lock)
from cpython.exc cimport PyErr_CheckSignals
cdef extern from "pythread.h":
    int PyThread_acquire_lock_timed(PyThread_type_lock lock, long long microseconds,
                                    int intr_flag) nogil
    unsigned long thread_ident "PyThread_get_thread_ident" ()

cdef inline PyThread_type_lock new_lock() except NULL:
    cdef PyThread_type_lock lock = PyThread_allocate_lock()
    if lock == NULL:
        raise MemoryError("cannot allocate a thread lock")
    return lock

cdef inline void free_lock(PyThread_type_lock lock) noexcept:
    if lock != NULL:
        PyThread_free_lock(lock)

cdef inline bint take_lock_now(PyThread_type_lock lock) noexcept:
    return PyThread_acquire_lock(lock, 0) == 1

cdef inline int wait_for_lock(PyThread_type_lock lock, double seconds) except -1:
    cdef long long left = -1 if seconds < 0 else <long long>(seconds * 1e6)
    cdef long long part
    cdef int got
    while True:
        part = 20000 if left < 0 or left > 20000 else left
        with nogil:
            got = PyThread_acquire_lock_timed(lock, part, 0)
        if got == 1:
            return 1
        if left >= 0:
            left -= part
            if left <= 0:
                return 0
        PyErr_CheckSignals()  # (raises the handler's exception, if any)

cdef inline void give_lock(PyThread_type_lock lock) noexcept:
    PyThread_release_lock(lock)
