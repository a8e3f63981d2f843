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

# The byte compare and copy of intrinsics.py: memcmp / memcpy after the same bounds check.
from libc.string cimport memcmp, memcpy

cdef inline bint same_bytes(const unsigned char[::1] view, Py_ssize_t at, bytes data) except -1:
    cdef Py_ssize_t n = len(data)
    if at < 0 or n > view.shape[0] - at:
        raise IndexError(f"bytes [{at}, {at + n}) are outside the segment")
    return n == 0 or memcmp(&view[at], <const char*>data, n) == 0

cdef inline int copy_bytes(unsigned char[::1] out, Py_ssize_t at, bytes data) except -1:
    cdef Py_ssize_t n = len(data)
    if at < 0 or n > out.shape[0] - at:
        raise IndexError(f"bytes [{at}, {at + n}) are outside the segment")
    if n:
        memcpy(&out[at], <const char*>data, n)
    return 0
