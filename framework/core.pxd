# The C layout of SegmentCore (core.py, pure-Python mode).
from segalloc.kernel cimport AlgorithmKernel
from segalloc.words cimport Words
from segalloc.thread_lock cimport ThreadLock
from segalloc.robust cimport RobustMutex, version_close, version_holds, version_open, version_read

cdef class SegmentCore:
    cdef public object _storage, _alg, _journal
    cdef public AlgorithmKernel _kernel
    cdef public Words _words
    cdef public Py_ssize_t _size, _depth, _extent_link, _undo_depth, generation
    cdef public bint _closed, _read_only, _journaled, _bare, _version_open
    cdef public Py_ssize_t _version_at
    cdef public ThreadLock _thread_lock
    cdef object __weakref__

    cdef object enter_section(self, bint write, bint record)
    cdef bint short_of_room(self) except -1
    cdef bint plain_commit(self) except -1
    cdef int leave_section(self, object lock, bint failed, object error=*) except -1
    cdef bint bare(self) except -1
    cdef object take_lock(self)
    cdef int give_lock(self, object lock, object error) except -1
    cdef int check_usable(self, bint write) except -1
    cdef int open_version(self) except -1
    cdef int close_version(self) except -1
    cdef long long read_version(self) except? -2
    cdef bint read_holds(self, long long seen) except -1
    cdef Py_ssize_t allocate_offset(self, object wanted) except? -2
    cdef int free_offset(self, object offset) except -1

cpdef object check_size(object value, str what)
cpdef object check_handle(object handle)
