# Cython declarations augmenting string.py (pure-Python mode): the buffer helpers it calls in C.
from segalloc.containers.buffers cimport B_CAPACITY, B_DATA, B_LENGTH, _release_buffer, _reserve
