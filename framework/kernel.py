"""The C-level entry points of a compiled algorithm, for compiled callers (the replay loop).

A compiled algorithm's core class derives from ``AlgorithmKernel`` and implements its
``kernel_*`` methods as C methods (declared in ``kernel.pxd``), so compiled code such as the
trace replay and the segment's allocation path calls them without Python dispatch: plain C
integers in and out, -1 for "no memory". The public ``MemoryAlgorithm`` methods of such an
algorithm call the same methods; a kernel method it does not implement goes through its
Python method.
Interpreted, these are ordinary methods; an algorithm that does not derive from
``AlgorithmKernel`` (a third party's pure-Python plugin) is driven through its Python methods.
"""

from __future__ import annotations

from typing import Any, cast

import cython

from segalloc.build import is_compiled
from segalloc.interfaces import Command
from segalloc.words import Words

__all__ = ["NO_MEMORY", "AlgorithmKernel", "kernel_of", "runs_in_c"]

#: what a kernel method returns instead of an offset when the request cannot be served
NO_MEMORY = -1


@cython.cclass
class AlgorithmKernel:
    """Base of compiled algorithm cores: the word view and the C entry points."""

    words: Words

    # The defaults go through the algorithm's Python methods; a compiled algorithm overrides
    # the ones its hot paths need (and its Python methods then call those).
    def kernel_allocate(self, size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """``allocate(size)``: the offset, or ``NO_MEMORY``."""
        offset = cast(Any, self).allocate(size)
        return NO_MEMORY if offset is None else offset

    def kernel_allocate_aligned(self, size: cython.Py_ssize_t,
                                alignment: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """``allocate_aligned(size, alignment)``: the offset, or ``NO_MEMORY``."""
        offset = cast(Any, self).allocate_aligned(size, alignment)
        return NO_MEMORY if offset is None else offset

    def kernel_deallocate(self, offset: cython.Py_ssize_t) -> cython.int:
        """``deallocate(offset)``."""
        cast(Any, self).deallocate(offset)
        return 0

    def kernel_command(self, flags: cython.Py_ssize_t, limit_size: cython.Py_ssize_t,
                       preferred_size: cython.Py_ssize_t,
                       reuse: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """``allocation_command(flags, limit, preferred, reuse)`` (``reuse`` -1: none): the
        offset the command answers, or ``NO_MEMORY``."""
        offset, _ = cast(Any, self).allocation_command(
            Command(flags), limit_size, preferred_size, None if reuse < 0 else reuse)
        return NO_MEMORY if offset is None else offset


def _kernel_class(algorithm: AlgorithmKernel) -> type:
    """The class that implements ``algorithm``'s kernel methods."""
    mro = type(algorithm).__mro__
    return mro[mro.index(AlgorithmKernel) - 1]


def kernel_of(algorithm: object,
              methods: tuple[str, ...] = ("allocate", "deallocate")) -> AlgorithmKernel | None:
    """``algorithm`` when its kernel methods stand for its Python ``methods`` (by default
    ``allocate`` / ``deallocate``, the ones the segment calls): it is an ``AlgorithmKernel`` and
    no subclass of its core overrides one of them in Python (a subclass that wraps them, to
    count or to slow them down, must be called through them); None otherwise."""
    if not isinstance(algorithm, AlgorithmKernel):
        return None
    mro = type(algorithm).__mro__
    core = mro.index(_kernel_class(algorithm))
    if any(name in vars(base) for base in mro[:core] for name in methods):
        return None
    return algorithm


def runs_in_c(kernel: AlgorithmKernel) -> bool:
    """True when ``kernel``'s methods are compiled code, which runs no Python (so no other
    thread) while it works: its class comes from a compiled module."""
    return is_compiled(_kernel_class(kernel))
