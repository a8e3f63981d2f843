"""Compile the hot modules with Cython from their Python source (pure-Python mode).

The same ``.py`` files ship and run interpreted when ``SEGALLOC_PURE_PYTHON=1`` or when no
compiler is available at install time (the build then warns and installs them as they are).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
#: repository folder -> import package (as pyproject's package-dir maps them)
PACKAGES = {"framework": "segalloc", "framework/containers": "segalloc.containers",
            "algorithms": "segalloc.algorithms", "bench": "segalloc.bench"}
#: the modules compiled, by source path
COMPILED = [
    "framework/robust.py",
    "framework/word_set.py",
    "framework/words.py",
    "framework/thread_lock.py",
    "framework/kernel.py",
    "framework/core.py",
    "framework/journal.py",
    "framework/segment.py",
    "framework/names.py",
    "framework/manager.py",
    "framework/containers/codecs.py",
    "framework/containers/proxy.py",
    "framework/containers/buffers.py",
    "framework/containers/string.py",
    "framework/containers/sequence.py",
    "framework/containers/list.py",
    "framework/containers/vector.py",
    "framework/containers/dict.py",
    "algorithms/best_fit.py",
    "algorithms/segregated_fit.py",
    "algorithms/sequential_fit.py",
    "bench/replay_loop.py",
]
#: the C libraries a compiled module links (by source path)
LIBRARIES = {"framework/containers/dict.py": ["z"], "framework/names.py": ["z"]}
#: the modules whose hot paths chain many small ``cdef inline`` helpers (tlsf.c's shape): GCC's
#: default budget stops inlining them once their cold error paths (which build messages) count
#: in, so these get a larger one. A compiler that refuses the flags builds them without.
INLINE_HEAVY = ["algorithms/sequential_fit.py", "bench/replay_loop.py"]
#: ``always_inline`` makes every ``cdef inline`` helper (and Cython's inline utilities) inline
#: whatever GCC's budget says (measured on sequential_fit, sqlite trace, callgrind: 312 -> 293
#: instructions an operation, where the budgets alone stopped at ``take`` and ``live_prev``)
INLINE_FLAGS = ["-DCYTHON_INLINE=__inline__ __attribute__((always_inline))"]


class OptionalBuildExt(build_ext):
    """Build the extensions when a compiler is there; otherwise warn and ship pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure falls back to pure Python
            print(f"warning: segalloc's compiled modules were not built ({exc}); "
                  "the pure-Python modules are installed", file=sys.stderr)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            try:
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001 - a compiler refusing the inline flags
                if not ext.extra_compile_args:
                    raise
                print(f"warning: {ext.name} failed with {ext.extra_compile_args} ({exc}); "
                      "building it without them", file=sys.stderr)
                ext.extra_compile_args = []
                super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"warning: {ext.name} was not compiled ({exc}); it runs interpreted",
                  file=sys.stderr)


def extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("SEGALLOC_PURE_PYTHON") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("warning: Cython is not installed; segalloc installs pure Python", file=sys.stderr)
        return []
    from setuptools import Extension

    # cimports name the installed packages: let Cython find each folder's .pxd files under
    # the package path it installs as (a tree of links, rebuilt at each build)
    include = ROOT / "build" / "cython-include"
    shutil.rmtree(include, ignore_errors=True)
    for folder, package in PACKAGES.items():
        target = include.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for pxd in (ROOT / folder).glob("*.pxd"):
            (target / pxd.name).symlink_to(pxd)
        (target / "__init__.pxd").touch()
    modules = []
    for source in COMPILED:
        folder, stem = source.rsplit("/", 1)
        name = f"{PACKAGES[folder]}.{stem.removesuffix('.py')}"
        modules.append(Extension(name, [source], libraries=LIBRARIES.get(source, []),
                                 extra_compile_args=INLINE_FLAGS if source in INLINE_HEAVY else []))
    return cythonize(
        modules,
        include_path=[str(include)],
        language_level=3,
        build_dir=str(ROOT / "build" / "cython"),
        compiler_directives={"boundscheck": True, "wraparound": False, "initializedcheck": True,
                             "cdivision": False, "embedsignature": True},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
