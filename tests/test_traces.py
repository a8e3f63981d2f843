"""The trace format and the replay rules, on hand-made traces with known answers."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest

from segalloc import plugins
from segalloc.bench.cli import main, parse_size
from segalloc.bench.replay import median_index, median_run, replay_trace
from segalloc.bench.traces import ALLOC, FREE, REALLOC, TraceError, parse_lines, read_trace, write_trace

ALGORITHMS = sorted(plugins().algorithms)


def test_parse_renumbers_ids_and_finds_the_peak() -> None:
    trace = parse_lines(["# comment", "a x 100", "a 7 50 64", "", "r x 300", "f 7", "a y 10"])
    assert trace.ops == [(ALLOC, 0, 100, 0), (ALLOC, 1, 50, 64), (REALLOC, 0, 300, 0),
                         (FREE, 1, 0, 0), (ALLOC, 2, 10, 0)]
    assert (trace.ids, trace.peak_live, trace.peak_index) == (3, 350, 2)


@pytest.mark.parametrize(
    ("line", "message"),
    [("q 1 2", "unknown operation 'q'"), ("a 1", "takes 2-3 fields"), ("f", "takes 1 fields"),
     ("a 1 ten", "integers"), ("a 1 -5", "negative"), ("a 1 8 24", "power of two"),
     ("r 1 2 3", "takes 2 fields")],
)
def test_malformed_lines_name_their_line_number(line: str, message: str) -> None:
    with pytest.raises(TraceError, match=f"t.trace:3: .*{message}"):
        parse_lines(["a 0 1", "f 0", line], "t.trace")


@pytest.mark.parametrize(
    ("lines", "message"),
    [(["a 0 1", "a 0 2"], "t.trace:2: ID 0 is allocated again while live"),
     (["a 0 1", "f 9"], "t.trace:2: 'f' of ID 9, which is not live"),
     (["a 0 1", "f 0", "r 0 5"], "t.trace:3: 'r' of ID 0, which is not live"),
     (["a 0 1", "f 0", "f 0"], "t.trace:3: 'f' of ID 0")],
)
def test_unknown_and_reused_ids_are_refused_by_line(lines: list[str], message: str) -> None:
    with pytest.raises(TraceError, match=message):
        parse_lines(lines, "t.trace")


def test_an_id_freed_may_be_allocated_again() -> None:
    trace = parse_lines(["a 0x10 8", "f 0x10", "a 0x10 16"])  # address-keyed traces do this
    assert trace.ops == [(ALLOC, 0, 8, 0), (FREE, 0, 0, 0), (ALLOC, 0, 16, 0)]


def test_a_folder_is_not_a_trace(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a folder; a trace file was expected"):
        read_trace(tmp_path)


def test_replay_warns_when_allocations_failed(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_text("a 0 100\na 1 99999999\nf 0\n")
    assert main(["replay", str(trace), "--segment-size", "64KiB", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["failures"] == 1
    assert captured.err.startswith("segalloc: warning: 1 allocations failed in the 65,536-byte")
    with pytest.raises(SystemExit):
        main(["replay", str(trace), "--segment-size", "0"])
    assert "at least 1 byte" in capsys.readouterr().err


def test_sizes_take_units_up_to_tebibytes() -> None:
    assert [parse_size(text) for text in ("65536", "64k", "256MiB", "2G", "1T", "1TB")] == [
        65536, 64 << 10, 256 << 20, 2 << 30, 1 << 40, 1000**4]


def test_gzip_is_detected_by_content(tmp_path: Path) -> None:
    ops = [(ALLOC, 0, 10, 0), (ALLOC, 1, 20, 32), (REALLOC, 0, 40, 0), (FREE, 1, 0, 0)]
    plain, packed = tmp_path / "plain.gz", tmp_path / "packed.txt"
    plain.write_text("a 0 10\na 1 20 32\nr 0 40\nf 1\n")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_trace(plain).ops == read_trace(packed).ops == ops
    write_trace(ops, tmp_path / "again.gz")
    assert read_trace(tmp_path / "again.gz").ops == ops
    with pytest.raises(FileNotFoundError):
        read_trace(tmp_path / "missing.trace")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TraceError, match="not a text trace"):
        read_trace(tmp_path / "binary")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_replay_rules_and_metrics(algorithm: str) -> None:
    lines = ["a 1 1000", "a 2 1000", "f 1", "r 2 3000", "r 2 100", "a 3 999999999",
             "r 3 10", "f 3", "a 4 16 256"]
    result = replay_trace(parse_lines(lines), algorithm, segment_size=1 << 16)
    assert result.ops == 9
    assert result.failures == 1  # the huge allocation; its later f and r are skipped
    assert result.peak_live == 3000
    assert result.high_water >= 3000 + 128
    assert result.footprint_ratio == result.high_water / 3000
    assert 0.0 <= result.frag_at_peak < 1.0
    assert result.first_failure_utilisation == pytest.approx(100 / (1 << 16))


def test_replay_cli_json_has_exactly_the_documented_keys(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_text("a 0 100\na 1 200\nf 0\n")
    assert main(["replay", str(trace), "--algorithm", "sequential_fit", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"ops", "seconds", "ns_per_op", "peak_live", "high_water",
                             "footprint_ratio", "failures", "frag_at_peak", "algorithm",
                             "backend", "segment_size", "trace"}
    assert (document["peak_live"], document["failures"], document["backend"]) == (300, 0, "heap")


def test_replay_cli_probes_add_latency_and_word_counts(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_text("a 0 100\na 1 200\nr 0 400\nf 0\n")
    assert main(["replay", str(trace), "--algorithm", "best_fit", "--probes", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document["latency_ns"]) == {"allocate", "free", "realloc"}
    assert document["cost_ops"] == 4 and document["words_per_op"]["max"] >= 1


def test_median_run_keeps_the_middle_replay_and_notes_them_all() -> None:
    trace = parse_lines(["a 0 100", "a 1 200", "f 0"])
    runs = [replace(replay_trace(trace, "best_fit"), ns_per_op=t) for t in (5.0, 1.0, 3.0, 9.0)]
    chosen = median_run(runs)
    assert chosen.ns_per_op == 3.0 and chosen.observations is not None
    assert chosen.observations.ns_per_op_runs == (5.0, 1.0, 3.0, 9.0)
    assert median_run(runs[:1]).ns_per_op == 5.0
    assert median_index([2.0, 1.0]) == 1  # the lower middle of an even count
    with pytest.raises(ValueError):
        median_index([])


def test_replay_cli_repeat(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_text("a 0 100\na 1 200\nf 0\n")
    assert main(["replay", str(trace), "--repeat", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["peak_live"] == 300
    assert main(["replay", str(trace), "--repeat", "0"]) == 1
    assert "--repeat must be at least 1" in capsys.readouterr().err


def test_replay_cli_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["replay", str(tmp_path / "nope.trace"), "--algorithm", "sequential_fit"]) == 1
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.trace"
    bad.write_text("a 0 1\nz\n")
    assert main(["replay", str(bad), "--algorithm", "sequential_fit"]) == 1
    assert "bad.trace:2" in capsys.readouterr().err
    assert main(["replay", str(bad), "--algorithm", "martian_fit"]) == 1
    assert "registered: " in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(bad), "--segment-size", "lots"])
    assert exit_info.value.code == 2
