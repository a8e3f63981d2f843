# The compiled form of journal.py's scan for clean words (pure-Python mode).
from segalloc.word_set cimport WordSet

cdef tuple _longest_run(const unsigned long long[::1] words, WordSet logged, Py_ssize_t first,
                        Py_ssize_t end)
