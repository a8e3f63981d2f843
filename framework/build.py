"""Which build runs: the compiled modules, or the same modules interpreted.

The package build compiles the hot modules with Cython from their ``.py`` source (``setup.py``
lists them) and installs each ``.so`` beside the ``.py`` it came from; Python's import system
prefers the ``.so``. ``SEGALLOC_PURE_PYTHON=1`` in the environment when ``segalloc`` is first
imported puts a finder first on ``sys.meta_path`` that loads every ``segalloc.*`` module from
its ``.py`` instead: the very same code, interpreted (what a machine without a compiler runs).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["PURE_PYTHON", "PURE_PYTHON_VARIABLE", "is_compiled", "use_pure_python"]

#: the environment variable that selects the interpreted build
PURE_PYTHON_VARIABLE = "SEGALLOC_PURE_PYTHON"
#: True when this process runs segalloc interpreted by request
PURE_PYTHON = os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0")


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds ``segalloc.*`` modules as ``.py`` source, passing over compiled extensions."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("segalloc.") or not path:
            return None
        stem = fullname.rpartition(".")[2]
        for entry in path:
            source = os.path.join(entry, stem + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None  # a package (its __init__.py is never compiled) or not ours


def use_pure_python() -> None:
    """Load every ``segalloc`` module imported from now on from its ``.py`` source."""
    if not any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder())


def is_compiled(obj: object) -> bool:
    """True when ``obj`` (a module, or a class or function defined in one) runs compiled."""
    module = obj if isinstance(obj, ModuleType) else sys.modules.get(getattr(obj, "__module__", ""))
    spec = getattr(module, "__spec__", None)
    return isinstance(getattr(spec, "loader", None), importlib.machinery.ExtensionFileLoader)


if PURE_PYTHON:
    use_pure_python()
