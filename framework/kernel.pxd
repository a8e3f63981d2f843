# The C layout and C entry points of AlgorithmKernel (kernel.py, pure-Python mode).
from segalloc.words cimport Words

cdef class AlgorithmKernel:
    cdef public Words words
    cdef Py_ssize_t kernel_allocate(self, Py_ssize_t size) except -2
    cdef Py_ssize_t kernel_allocate_aligned(self, Py_ssize_t size, Py_ssize_t alignment) except -2
    cdef int kernel_deallocate(self, Py_ssize_t offset) except -1
    cdef Py_ssize_t kernel_command(self, Py_ssize_t flags, Py_ssize_t limit_size,
                                   Py_ssize_t preferred_size, Py_ssize_t reuse) except -2
