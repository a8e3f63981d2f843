"""The compiled build is there, current, and ``SEGALLOC_PURE_PYTHON=1`` turns all of it off.

``setup.py``'s ``COMPILED`` is the one list of compiled modules; these tests read it from the
source tree. An install where a module of that list runs interpreted fails here (a build
without a compiler warns and installs pure Python: run the tests of such an install with
``SEGALLOC_PURE_PYTHON=1``), so CI, which has a compiler, cannot pass on an interpreted build.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from compiled_build import SETUP, compiled_extension, compiled_modules

import segalloc

ROOT = SETUP.parent
MODULES = compiled_modules()
REBUILD = "pip install --no-deps -e . --config-settings editable_mode=strict"


def test_setup_lists_sources_that_exist() -> None:
    assert MODULES, "setup.py compiles nothing"
    for module, source in MODULES.items():
        assert (ROOT / source).is_file(), f"setup.py compiles {source}, which is not there"
        assert importlib.import_module(module).__name__ == module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_listed_module_runs_compiled_unless_pure_python_is_asked(module: str) -> None:
    running = segalloc.is_compiled(importlib.import_module(module))
    if segalloc.PURE_PYTHON:
        assert not running, f"{module} runs compiled although SEGALLOC_PURE_PYTHON is set"
        return
    assert running, (
        f"{module} runs interpreted: its extension was not built (no compiler when installed?) "
        f"or not linked; rebuild with `{REBUILD}`, or test the interpreted build with "
        "SEGALLOC_PURE_PYTHON=1")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_compiled_module_is_older_than_its_source(module: str) -> None:
    """An edit to a compiled module's .py or .pxd needs a rebuild, or the old code runs."""
    extension = compiled_extension(module)
    if extension is None:
        assert segalloc.PURE_PYTHON, f"{module} has no compiled build"  # the test above says more
        return
    built = extension.stat().st_mtime
    python = ROOT / MODULES[module]
    for source in filter(Path.is_file, (python, python.with_suffix(".pxd"))):
        assert source.stat().st_mtime <= built, (
            f"{source.relative_to(ROOT)} changed after its extension was built: rebuild with "
            f"`{REBUILD}`")


def test_pure_python_runs_every_module_interpreted() -> None:
    """``SEGALLOC_PURE_PYTHON=1`` in a fresh process: no segalloc module runs compiled, the
    listed ones and the plugins included."""
    script = (
        "import importlib, json, sys, segalloc\n"
        f"for module in {sorted(MODULES)!r}: importlib.import_module(module)\n"
        "segalloc.plugins().algorithms\n"
        "print(json.dumps({'pure_python': segalloc.PURE_PYTHON, 'loaded': sorted(n for n in "
        "sys.modules if n.startswith('segalloc')), 'compiled': sorted(n for n, m in "
        "sys.modules.items() if n.startswith('segalloc') and segalloc.is_compiled(m))}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "SEGALLOC_PURE_PYTHON": "1"}, check=True, timeout=120)
    answer = json.loads(done.stdout)
    assert answer["pure_python"] and set(MODULES) <= set(answer["loaded"])
    assert answer["compiled"] == []


def test_is_compiled_reads_modules_classes_and_functions() -> None:
    words = importlib.import_module("segalloc.words")
    compiled = segalloc.is_compiled(words)
    assert segalloc.is_compiled(words.Words) is compiled
    assert not segalloc.is_compiled(segalloc.build) and not segalloc.is_compiled(Path)
    assert not segalloc.is_compiled(test_is_compiled_reads_modules_classes_and_functions)
