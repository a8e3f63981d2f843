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
