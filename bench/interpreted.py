"""The interpreted build of a compiled class, beside the compiled one in the same process.

A compiled algorithm reads its words through a typed C view, so instrumentation that wraps the
word view in Python (the word-count probe) sees nothing of it. The interpreted build runs the
very same source, so it makes the very same word accesses: ``interpreted_class`` loads the
class's module from its ``.py`` source, and every compiled ``segalloc`` module that one
imports, as ``SEGALLOC_PURE_PYTHON=1`` would, without disturbing the compiled modules the rest
of the process uses (they are put back in ``sys.modules`` and on their packages afterwards).
"""

from __future__ import annotations

import functools
import importlib
import sys
from types import ModuleType
from typing import Any

from segalloc.build import is_compiled, use_pure_python

__all__ = ["interpreted_class"]


def interpreted_class(cls: type[Any]) -> type[Any]:
    """``cls`` itself when it runs interpreted; else the class of that name in its module
    loaded from source (loaded once a process)."""
    if not is_compiled(cls):
        return cls
    found: type[Any] = getattr(_interpreted_module(cls.__module__), cls.__qualname__)
    return found


#: the interpreted copies of compiled modules loaded so far, by name: one interpreted world a
#: process, so twins loaded at different times share their kernel and word view classes
_TWINS: dict[str, ModuleType] = {}


@functools.cache
def _interpreted_module(name: str) -> ModuleType:
    """Module ``name`` loaded from source, with the compiled modules it imports loaded from
    source too (or taken from ``_TWINS``); ``sys.modules``, the packages and the import path
    are left as they were."""
    compiled = {key: module for key, module in sys.modules.items()
                if key.startswith("segalloc.") and is_compiled(module)}
    known = set(sys.modules)
    finders = list(sys.meta_path)
    for key in compiled:
        del sys.modules[key]
    sys.modules.update(_TWINS)
    try:
        use_pure_python()
        return importlib.import_module(name)
    finally:
        sys.meta_path[:] = finders
        for key in (set(sys.modules) - known) | set(compiled):
            module = sys.modules.pop(key, None)
            if module is None:  # a compiled module this one does not import
                continue
            if key in compiled:
                _TWINS[key] = module
            package, _, child = key.rpartition(".")
            if getattr(sys.modules.get(package), child, None) is module:
                delattr(sys.modules[package], child)
        sys.modules.update(compiled)
        for key, module in compiled.items():  # an import rebinds the package's attribute
            package, _, child = key.rpartition(".")
            setattr(sys.modules[package], child, module)
