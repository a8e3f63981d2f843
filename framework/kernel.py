"""The C-level entry points of a compiled algorithm, for compiled callers (the replay loop).

A compiled algorithm's core class derives from ``AlgorithmKernel`` and implements its
``kernel_*`` methods as C methods (declared in ``kernel.pxd``), so compiled code such as the
trace replay calls them without Python dispatch: plain C integers in and out, -1 for "no
memory". The public ``MemoryAlgorithm`` methods of such an algorithm call the same methods.
Interpreted, these are ordinary methods; an algorithm that does not derive from
``AlgorithmKernel`` (a third party's pure-Python plugin) is driven through its Python methods.
"""

from __future__ import annotations

import cython

from segalloc.words import Words

__all__ = ["AlgorithmKernel", "NO_MEMORY"]

#: what a kernel method returns instead of an offset when the request cannot be served
NO_MEMORY = -1


@cython.cclass
class AlgorithmKernel:
    """Base of compiled algorithm cores: the word view and the C entry points."""

    words: Words

    def kernel_allocate(self, size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """``allocate(size)``: the offset, or ``NO_MEMORY``."""
        raise NotImplementedError

    def kernel_allocate_aligned(self, size: cython.Py_ssize_t,
                                alignment: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """``allocate_aligned(size, alignment)``: the offset, or ``NO_MEMORY``."""
        raise NotImplementedError

    def kernel_deallocate(self, offset: cython.Py_ssize_t) -> None:
        """``deallocate(offset)``."""
        raise NotImplementedError

    def kernel_command(self, flags: cython.Py_ssize_t, limit_size: cython.Py_ssize_t,
                       preferred_size: cython.Py_ssize_t,
                       reuse: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """``allocation_command(flags, limit, preferred, reuse)`` (``reuse`` -1: none): the
        offset the command answers, or ``NO_MEMORY``."""
        raise NotImplementedError
