"""The distribution installs one import package, ``segalloc``, with its typing marker and data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: what a working tree holds besides the sources: never part of a build
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    ".benchmarks", "bench-out",
)


def test_the_wheel_holds_only_the_segalloc_package(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=_NOT_SOURCES)
    # what `segalloc bench` leaves behind must not be picked up as a package
    (tree / "bench-out").mkdir()
    (tree / "bench-out" / "__init__.py").write_text("")
    (tree / "bench-out" / "report.json").write_text("{}")
    # the layout without compiling (setup.py builds no extension then; tests/test_build.py checks
    # the compiled modules): a compile of every module would be most of this test's time
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(tree)],
        check=True, capture_output=True, text=True, timeout=300,
        env={**os.environ, "SEGALLOC_PURE_PYTHON": "1"},
    )
    (wheel,) = (tmp_path / "dist").glob("segalloc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    others = {name.split("/")[0] for name in names} - {"segalloc"}
    assert len(others) == 1 and re.fullmatch(r"segalloc-[^-]+\.dist-info", *others), others
    assert {"segalloc/__init__.py", "segalloc/py.typed", "segalloc/algorithms/best_fit.py",
            "segalloc/backends/heap.py", "segalloc/bench/cli.py"} <= names
    data = sorted((ROOT / "bench" / "data").glob("*.gz")) + sorted((ROOT / "bench" / "data").glob("*.cpp"))
    assert data, "bench/data holds the traces and the Boost replayer's source"
    assert {f"segalloc/bench/data/{path.name}" for path in data} <= names
