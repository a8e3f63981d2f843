# The C layout of ThreadLock (thread_lock.py, pure-Python mode).
cimport cython
from cpython.pythread cimport PyThread_type_lock
from segalloc.intrinsics cimport (free_lock, give_lock, new_lock, take_lock_now, thread_ident,
                                  wait_for_lock)

@cython.final
cdef class ThreadLock:
    cdef PyThread_type_lock _lock
    cdef unsigned long _owner
    cdef Py_ssize_t _depth

    cpdef bint take(self, double timeout) except -1
    cpdef int give(self) except -1
