"""segalloc.bench.boost_reference: the native Boost.Interprocess replayer, and its absence."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segalloc.bench.boost_reference import (
    BOOST_ALGORITHMS,
    BOOST_COUNTERPART,
    boost_reference,
    build_replayer,
    find_toolchain,
    replay_on_boost,
)
from segalloc.bench.replay import replay_trace
from segalloc.bench.traces import Trace, TraceError, parse_lines

ROOT = Path(__file__).resolve().parents[1]
#: ../shared/reference/boost-1.74-figures.md
SQLITE_PEAK_LIVE = 7_701_367
SQLITE_HIGH_WATER = {"rbtree_best_fit": 7_761_112, "simple_seq_fit": 7_801_528}
SMALL_SEGMENT = 64 << 10


def _shared_trace(name: str) -> Path:
    for candidate in (ROOT / "bench" / "data" / name, ROOT.parent / "shared" / "traces" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"test trace {name} is neither in bench/data nor ../shared/traces")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def boost_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build cache for the session: the replayer is compiled once."""
    return tmp_path_factory.mktemp("boost-cache")


@pytest.fixture(scope="session")
def replayer(boost_cache: Path) -> Path:
    return build_replayer(find_toolchain(), boost_cache)


@pytest.fixture(scope="session")
def sqlite_reference(boost_cache: Path) -> dict[str, Any]:
    return boost_reference([_shared_trace("sqlite.trace.gz")], cache_dir=boost_cache)


def test_counterparts_are_boost_algorithms() -> None:
    assert set(BOOST_COUNTERPART) == {"best_fit", "sequential_fit"}
    assert sorted(BOOST_COUNTERPART.values()) == sorted(BOOST_ALGORITHMS)


def test_sqlite_figures_agree_with_reference_file(sqlite_reference: dict[str, Any]) -> None:
    assert sqlite_reference["available"], sqlite_reference["reason"]
    assert sqlite_reference["reason"] is None
    assert sqlite_reference["boost_version"].count(".") == 2
    figures = sqlite_reference["sqlite.trace.gz"]
    assert set(figures) == set(BOOST_ALGORITHMS)
    for algorithm, expected_high_water in SQLITE_HIGH_WATER.items():
        metrics = figures[algorithm]
        assert metrics["ops"] == 141_472
        assert metrics["peak_live"] == SQLITE_PEAK_LIVE
        assert metrics["high_water"] == pytest.approx(expected_high_water, rel=0.01)
        assert metrics["footprint_ratio"] == pytest.approx(
            metrics["high_water"] / SQLITE_PEAK_LIVE)
        assert metrics["failures"] == 0
        assert metrics["first_failure_utilisation"] is None
        assert 0.0 <= metrics["frag_at_peak"] < 1.0
        assert metrics["seconds"] > 0
        assert metrics["ns_per_op"] == pytest.approx(metrics["seconds"] * 1e9 / metrics["ops"])


def test_metrics_use_the_replay_result_keys(sqlite_reference: dict[str, Any]) -> None:
    keys = set(replay_trace(parse_lines(["a 0 8"]), "sequential_fit", SMALL_SEGMENT).as_dict())
    for metrics in sqlite_reference["sqlite.trace.gz"].values():
        assert set(metrics) == keys
        assert isinstance(metrics["frag_at_peak"], float)


def test_without_a_compiler_the_reference_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, boost_cache: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    result = boost_reference([_shared_trace("sqlite.trace.gz")], cache_dir=boost_cache)
    assert result["available"] is False
    assert "g++ not found" in result["reason"]
    assert result["boost_version"] is None
    assert "sqlite.trace.gz" not in result


def _fake_compiler(directory: Path, include_dir: Path) -> None:
    """A 'g++' that reports ``include_dir`` as its only include path and fails every build."""
    script = directory / "g++"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *--version*) echo "g++ (fake) 0.0"; exit 0;;\n'
        "  *-E*) printf '#include <...> search starts here:\\n %s\\nEnd of search list.\\n' "
        f"'{include_dir}' >&2; exit 0;;\n"
        '  *) echo "boost_replay.cpp:1: error: boom" >&2; exit 1;;\n'
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_without_boost_headers_the_reference_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_include = tmp_path / "include"
    empty_include.mkdir()
    _fake_compiler(tmp_path, empty_include)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    result = boost_reference([], cache_dir=tmp_path / "cache")
    assert result["available"] is False
    assert "Boost headers not found" in result["reason"]
    assert "libboost-dev" in result["reason"]


def test_a_failed_build_makes_the_reference_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    include = tmp_path / "include"
    (include / "boost" / "interprocess").mkdir(parents=True)
    (include / "boost" / "interprocess" / "managed_external_buffer.hpp").write_text("")
    (include / "boost" / "version.hpp").write_text("#define BOOST_VERSION 107400\n")
    _fake_compiler(tmp_path, include)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    cache = tmp_path / "cache"
    result = boost_reference([], cache_dir=cache)
    assert result["available"] is False
    assert "error: boom" in result["reason"]
    assert list(cache.iterdir()) == []  # no half-built binary left behind


def test_replayer_is_built_once(replayer: Path, boost_cache: Path) -> None:
    built = replayer.stat().st_mtime_ns
    assert build_replayer(find_toolchain(), boost_cache) == replayer
    assert replayer.stat().st_mtime_ns == built


def test_failed_allocations_in_a_tiny_segment_are_counted(
    tmp_path: Path, boost_cache: Path
) -> None:
    trace = _write(tmp_path / "tiny.trace",
                   "a x 100\na big 100000\nf big\nr x 200\nr x 50000\nf x\n")
    result = boost_reference([trace], segment_size=4096, cache_dir=boost_cache)
    for metrics in result["tiny.trace"].values():
        assert metrics["failures"] == 2  # the big allocate, then the reallocate to 50000
        assert metrics["first_failure_utilisation"] == pytest.approx(100 / 4096)
        assert metrics["peak_live"] == 200
        assert metrics["ops"] == 6


def test_frag_at_peak_sees_holes(tmp_path: Path, boost_cache: Path) -> None:
    holes = _write(tmp_path / "holes.trace",
                   "a 0 1000\na 1 1000\na 2 1000\na 3 1000\nf 0\nf 2\na 4 5000\n")
    solid = _write(tmp_path / "solid.trace", "a 0 1000\na 1 1000\nf 1\n")
    result = boost_reference([holes, solid], segment_size=SMALL_SEGMENT, cache_dir=boost_cache)
    for algorithm in BOOST_ALGORITHMS:
        assert result["solid.trace"][algorithm]["frag_at_peak"] == 0.0
        # two ~1 KiB holes beside a tail of about 50 KiB
        assert 0.02 < result["holes.trace"][algorithm]["frag_at_peak"] < 0.06


def test_a_segment_too_small_for_boost_is_a_value_error(replayer: Path) -> None:
    trace = parse_lines(["a 0 8"])
    with pytest.raises(ValueError, match="segment_size 64"):
        replay_on_boost(replayer, trace, "rbtree_best_fit", 64)


def test_unknown_boost_algorithm_is_a_value_error(replayer: Path) -> None:
    with pytest.raises(ValueError, match="rbtree_best_fit, simple_seq_fit"):
        replay_on_boost(replayer, parse_lines([]), "tlsf")


def test_trace_errors_surface(tmp_path: Path, boost_cache: Path) -> None:
    bad = _write(tmp_path / "bad.trace", "a 0 8\nq 0\n")
    with pytest.raises(TraceError, match="bad.trace:2"):
        boost_reference([bad], cache_dir=boost_cache)
    with pytest.raises(FileNotFoundError):
        boost_reference([tmp_path / "missing.trace"], cache_dir=boost_cache)
    other = tmp_path / "other"
    other.mkdir()
    twin = _write(other / "bad.trace", "a 0 8\n")
    with pytest.raises(ValueError, match="two traces named bad.trace"):
        boost_reference([bad, twin], cache_dir=boost_cache)
    with pytest.raises(ValueError, match="segment_size"):
        boost_reference([], segment_size=0, cache_dir=boost_cache)
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        boost_reference([], repeat=0, cache_dir=boost_cache)


_ops = st.lists(
    st.tuples(st.sampled_from("afr"), st.integers(0, 7), st.integers(0, 600)),
    max_size=40,
)


def _as_trace(ops: list[tuple[str, int, int]]) -> Trace:
    """The operations a trace may hold (the reader refuses an allocation of a live ID and a
    free or reallocation of one that is not)."""
    live: set[int] = set()
    lines = []
    for code, ident, size in ops:
        if (code == "a") == (ident in live):
            continue
        if code == "a":
            live.add(ident)
        elif code == "f":
            live.discard(ident)
        lines.append(f"{code} {ident} {size}" if code != "f" else f"f {ident}")
    return parse_lines(lines)


@given(_ops)
def test_bookkeeping_matches_the_python_replay(replayer: Path,
                                               ops: list[tuple[str, int, int]]) -> None:
    """Same rules: live bytes, peak and skipped ops agree with segalloc.bench.replay's, op for op."""
    trace = _as_trace(ops)
    ours = replay_trace(trace, "sequential_fit", segment_size=SMALL_SEGMENT)
    for algorithm in BOOST_ALGORITHMS:
        boost = replay_on_boost(replayer, trace, algorithm, SMALL_SEGMENT)
        assert boost["failures"] == ours.failures == 0
        assert boost["peak_live"] == ours.peak_live
        assert boost["ops"] == ours.ops


def test_cxx_selects_the_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    result = boost_reference([], cache_dir=tmp_path)
    assert result["available"] is False
    assert "no-such-compiler not found" in result["reason"]
