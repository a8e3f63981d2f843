"""Boost.Interprocess as the native reference, measured in the same run as our algorithms.

When a C++ compiler and the Boost headers are present (Debian's ``libboost-dev``), a small
replayer of our own (``bench/data/boost_replay.cpp``) is built once into a cache directory and
run, one process per trace and algorithm, on Boost's ``rbtree_best_fit`` and ``simple_seq_fit``
with our replay rules (docs/architecture.md, "Replay semantics"). Traces are parsed here by
``segalloc.bench.traces`` and handed over as a numeric op stream, so both sides agree on IDs,
validation and the peak op by construction.

A missing compiler, missing headers or a failed build are normal conditions on a user's machine:
the result then says ``available: False`` and why, and nothing raises for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segalloc.bench.replay import ReplayResult, median_index
from segalloc.bench.traces import Trace, read_trace

__all__ = [
    "BOOST_ALGORITHMS",
    "BOOST_COUNTERPART",
    "DEFAULT_SEGMENT_SIZE",
    "BoostUnavailable",
    "Toolchain",
    "boost_reference",
    "build_replayer",
    "default_cache_dir",
    "find_toolchain",
    "replay_on_boost",
]

#: our algorithm -> the Boost algorithm it follows, for the report's ratios
BOOST_COUNTERPART = {"best_fit": "rbtree_best_fit", "sequential_fit": "simple_seq_fit"}
BOOST_ALGORITHMS = ("rbtree_best_fit", "simple_seq_fit")
#: the segment of ../shared/reference/boost-1.74-figures.md
DEFAULT_SEGMENT_SIZE = 256 << 20

_SOURCE = Path(__file__).with_name("data") / "boost_replay.cpp"
_FLAGS = ("-O2", "-std=c++17")
_PROBE_HEADER = Path("boost", "interprocess", "managed_external_buffer.hpp")
_OPS_HEADER = "segalloc-ops 1"
#: the replayer's exit status when Boost refuses the segment (too small for its own header)
_SEGMENT_REFUSED = 3


class BoostUnavailable(Exception):
    """The reference cannot be measured here; the message says why (for the report)."""


@dataclass(frozen=True)
class Toolchain:
    """A C++ compiler and the Boost headers it sees on its own include path."""

    compiler: str
    compiler_version: str
    include_dir: Path
    boost_version: str


def _compiler_output(compiler: str, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([compiler, *args], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, check=False)
    except OSError as exc:
        raise BoostUnavailable(f"cannot run the C++ compiler {compiler}: {exc}") from None


def _include_dirs(compiler: str) -> list[Path]:
    """The compiler's ``#include <...>`` search list (it honours CPLUS_INCLUDE_PATH)."""
    stderr = _compiler_output(compiler, "-E", "-x", "c++", "-v", "-").stderr
    dirs: list[Path] = []
    inside = False
    for line in stderr.splitlines():
        if line.startswith("#include <...> search starts here:"):
            inside = True
        elif line.startswith("End of search list."):
            break
        elif inside and line.startswith(" "):
            dirs.append(Path(line.strip().removesuffix(" (framework directory)")))
    return dirs


def _boost_version(include_dir: Path) -> str:
    text = (include_dir / "boost" / "version.hpp").read_text(errors="replace")
    match = re.search(r"#\s*define\s+BOOST_VERSION\s+(\d+)", text)
    if not match:
        raise BoostUnavailable(f"no BOOST_VERSION in {include_dir / 'boost' / 'version.hpp'}")
    number = int(match.group(1))
    return f"{number // 100000}.{number // 100 % 1000}.{number % 100}"


def find_toolchain() -> Toolchain:
    """Find the compiler (``$CXX``, else ``g++``) and the Boost.Interprocess headers it sees."""
    wanted = os.environ.get("CXX") or "g++"
    compiler = shutil.which(wanted)
    if compiler is None:
        raise BoostUnavailable(f"no C++ compiler: {wanted} not found on PATH")
    version = _compiler_output(compiler, "--version")
    if version.returncode != 0:
        raise BoostUnavailable(f"{compiler} --version failed: {version.stderr.strip()[-300:]}")
    for include_dir in _include_dirs(compiler):
        if (include_dir / _PROBE_HEADER).is_file():
            first_line = (version.stdout.strip().splitlines() or [""])[0]
            return Toolchain(compiler, first_line, include_dir, _boost_version(include_dir))
    raise BoostUnavailable(
        f"Boost headers not found: no {_PROBE_HEADER.as_posix()} on {compiler}'s include path "
        "(install libboost-dev)"
    )


def default_cache_dir() -> Path:
    """``$SEGALLOC_CACHE_DIR``, else ``$XDG_CACHE_HOME/segalloc``, else ``~/.cache/segalloc``."""
    explicit = os.environ.get("SEGALLOC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "segalloc"


def build_replayer(toolchain: Toolchain, cache_dir: Path | None = None) -> Path:
    """The replayer binary, compiled only when the source, compiler, flags or Boost changed.

    The name carries a hash of all four; the build goes to a temporary file renamed into place,
    so parallel runs never see half a binary.
    """
    source = _SOURCE.read_bytes()
    identity = "\0".join([toolchain.compiler, toolchain.compiler_version, *_FLAGS,
                          str(toolchain.include_dir), toolchain.boost_version])
    key = hashlib.sha256(source + identity.encode()).hexdigest()[:16]
    cache = cache_dir or default_cache_dir()
    binary = cache / f"boost_replay-{key}"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    try:
        cache.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(prefix=binary.name + ".", dir=cache)
        os.close(handle)
    except OSError as exc:
        raise BoostUnavailable(f"cannot write the build cache {cache}: {exc}") from None
    try:
        built = _compiler_output(toolchain.compiler, *_FLAGS, "-o", scratch, str(_SOURCE))
        if built.returncode != 0:
            raise BoostUnavailable(
                f"building {_SOURCE.name} with {toolchain.compiler} failed: "
                f"{built.stderr.strip()[-600:]}"
            )
        os.replace(scratch, binary)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return binary


def _op_stream(trace: Trace) -> bytes:
    lines = [f"{_OPS_HEADER} {len(trace.ops)} {trace.ids} {trace.peak_index}"]
    lines.extend(f"{code} {ident} {size} {align}" for code, ident, size, align in trace.ops)
    lines.append("")
    return "\n".join(lines).encode("ascii")


def replay_on_boost(binary: Path, trace: Trace, algorithm: str,
                    segment_size: int = DEFAULT_SEGMENT_SIZE) -> dict[str, Any]:
    """Replay ``trace`` on one Boost algorithm in a fresh process; the replay metrics.

    ``ValueError`` when Boost refuses ``segment_size`` (smaller than its own header).
    """
    if algorithm not in BOOST_ALGORITHMS:
        raise ValueError(f"algorithm {algorithm!r} is not one of {', '.join(BOOST_ALGORITHMS)}")
    run = subprocess.run([str(binary), algorithm, str(segment_size)], input=_op_stream(trace),
                         capture_output=True, check=False)
    stderr = run.stderr.decode(errors="replace").strip()
    if run.returncode == _SEGMENT_REFUSED:
        raise ValueError(f"segment_size {segment_size}: {stderr}")
    if run.returncode != 0:
        raise RuntimeError(f"{binary.name} {algorithm} on {trace.name} exited with status "
                           f"{run.returncode}: {stderr}")
    figures = json.loads(run.stdout)
    for key in ("algorithm", "boost_version", "segment_size"):
        figures.pop(key)
    return ReplayResult(**figures).as_dict()


def _absent(reason: str, segment_size: int) -> dict[str, Any]:
    return {"available": False, "reason": reason, "boost_version": None, "compiler": None,
            "segment_size": segment_size}


def boost_reference(trace_paths: Sequence[Path], segment_size: int = DEFAULT_SEGMENT_SIZE, *,
                    cache_dir: Path | None = None, repeat: int = 1) -> dict[str, Any]:
    """Boost's figures for each trace: ``{trace name: {boost algorithm: metrics}}``, each
    from the replay of median ns/op among ``repeat`` (as our cells' figures).

    Beside the trace names (``Path.name``, as ``segalloc.bench.traces.Trace.name``) the result has
    ``available``, ``reason`` (why it is absent, else None), ``boost_version``, ``compiler`` and
    ``segment_size``. A trace that is missing or malformed raises as ``read_trace`` does.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if isinstance(segment_size, bool) or not isinstance(segment_size, int) or segment_size <= 0:
        raise ValueError(f"segment_size must be a positive int, not {segment_size!r}")
    paths = [Path(path) for path in trace_paths]
    names = [path.name for path in paths]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"trace_paths: two traces named {', '.join(duplicates)}")
    try:
        toolchain = find_toolchain()
        binary = build_replayer(toolchain, cache_dir)
    except BoostUnavailable as exc:
        return _absent(str(exc), segment_size)
    result: dict[str, Any] = {"available": True, "reason": None,
                              "boost_version": toolchain.boost_version,
                              "compiler": toolchain.compiler_version,
                              "segment_size": segment_size}
    for path in paths:
        trace = read_trace(path)
        for algorithm in BOOST_ALGORITHMS:
            runs = [replay_on_boost(binary, trace, algorithm, segment_size) for _ in range(repeat)]
            result.setdefault(trace.name, {})[algorithm] = runs[
                median_index([run["ns_per_op"] for run in runs])]
    return result
