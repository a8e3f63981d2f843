# The compiled form of journal.py's scan for clean words (pure-Python mode). Cython ignores the
# annotations of the locals of a function a .pxd declares: they are declared here.
cimport cython
from segalloc.word_set cimport WordSet

@cython.locals(start=Py_ssize_t, stop=Py_ssize_t, run=Py_ssize_t, index=Py_ssize_t)
cdef tuple _longest_run(const unsigned long long[::1] words, WordSet logged, Py_ssize_t first,
                        Py_ssize_t end)
