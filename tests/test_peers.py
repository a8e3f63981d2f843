"""segalloc peers (segalloc.bench.peers): the document's fields, segalloc's results checked,
absent peers reported, nothing left behind, the CLI and the section of segalloc bench --peers.

Runs at the --quick counts; no timing is asserted (speed is the benchmark's to show)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from segalloc.bench import peers
from segalloc.bench.cli import main
from segalloc.bench.peers import JOBS, QUICK, run_peers, scaling_rows, timed_rows

TOKEN = f"test{os.getpid()}"
SHM_DIR = Path("/dev/shm")
#: what each job's segalloc result must show, at the quick counts
EXPECTED_CHECKS = {
    "dict": {"length": QUICK.dict_keys, "right_values": QUICK.dict_keys, "get_sum_right": True,
             "sane": True},
    "list": {"length": QUICK.list_items, "iterated": QUICK.list_items, "in_order": True,
             "sum_right": True, "sane": True},
    "arrays": {"found": QUICK.arrays, "right_sums": QUICK.arrays, "sane": True},
}
HAS_NUMPY = importlib.util.find_spec("numpy") is not None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("peers-tmp")


@pytest.fixture(scope="module")
def document(scratch: Path) -> dict[str, Any]:
    """One quick run of every job, its temporary folders under ``scratch``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(scratch))
        return run_peers(QUICK, repeat=2, quick=True, token=TOKEN)


def _contenders(document: dict[str, Any], job: str) -> dict[str, dict[str, Any]]:
    (found,) = [entry for entry in document["jobs"] if entry["job"] == job]
    return {entry["name"]: entry for entry in found["contenders"]}


def test_document_has_the_documented_fields(document: dict[str, Any]) -> None:
    assert document["kind"] == "segalloc-peers" and document["version"] == peers.PEERS_VERSION
    assert json.loads(json.dumps(document)) == document
    params = document["parameters"]
    assert params["dict_keys"] == QUICK.dict_keys and params["list_items"] == QUICK.list_items
    assert params["arrays"] == QUICK.arrays and params["processes"] == list(QUICK.processes)
    assert params["repeat"] == 2 and params["quick"] is True
    assert params["jobs"] == [*JOBS, "scaling"]
    assert [job["job"] for job in document["jobs"]] == list(JOBS)
    assert set(document["build"]) == {"pure_python", "compiled"}
    for job in document["jobs"]:
        assert job["count"] == JOBS[job["job"]].count(QUICK)
        assert job["reference"] == job["contenders"][0]["name"]
        assert job["contenders"][0]["package"] == "segalloc"
        reference = job["contenders"][0]["ops"]
        for entry in job["contenders"]:
            assert entry["status"] in ("ok", "not installed", "error")
            if entry["status"] != "ok":
                assert entry["reason"] and entry["ops"] == {}
                continue
            assert list(entry["ops"]) == job["operations"]
            for op, figures in entry["ops"].items():
                assert len(figures["runs"]) == 2 and all(run > 0 for run in figures["runs"])
                assert min(figures["runs"]) <= figures["ns_per_op"] <= max(figures["runs"])
                assert figures["ratio"] == pytest.approx(
                    figures["ns_per_op"] / reference[op]["ns_per_op"])


def test_segalloc_results_are_verified(document: dict[str, Any]) -> None:
    for job, expected in EXPECTED_CHECKS.items():
        segalloc = [entry for entry in _contenders(document, job).values()
                    if entry["package"] == "segalloc"]
        assert len(segalloc) == 2
        for entry in segalloc:
            if job == "arrays" and not HAS_NUMPY:
                assert entry["status"] == "not installed" and entry["reason"] == "numpy not installed"
                continue
            assert entry["status"] == "ok", entry["reason"]
            assert entry["checks"] == expected and entry["verified"] is True


def test_peers_run_when_installed(document: dict[str, Any]) -> None:
    dicts = _contenders(document, "dict")
    for name, module in (("lmdb", "lmdb"), ("lmdb, one transaction", "lmdb"),
                         ("UltraDict", "UltraDict"), ("Manager dict", "multiprocessing")):
        entry = dicts[name]
        if _installed(module):
            assert entry["status"] == "ok" and entry["verified"] is True, entry
            assert entry["checks"]["length"] == QUICK.dict_keys
        else:
            assert entry["status"] == "not installed" and module in document["not_installed"]
    assert _contenders(document, "list")["Manager list"]["verified"] is True
    if HAS_NUMPY:
        assert _contenders(document, "arrays")["shared_memory"]["checks"] == {
            "found": QUICK.arrays, "right_sums": QUICK.arrays}


def test_scaling_points(document: dict[str, Any]) -> None:
    scaling = document["scaling"]
    assert scaling["processes"] == list(QUICK.processes)
    series = {entry["name"]: entry for entry in scaling["series"]}
    assert set(series) == set(peers.SERIES)
    for entry in series.values():
        if entry["status"] == "not installed":
            assert not _installed(entry["package"])
            continue
        assert entry["status"] == "ok" and entry["verified"] is True, entry
        assert entry["checks"]["wrong_values"] == 0
        assert [point["processes"] for point in entry["points"]] == list(QUICK.processes)
        for point in entry["points"]:
            assert point["ops_per_second"] > 0 and len(point["runs"]) == 2
            # CPU time of n workers over the span they ran in: at most n cores' worth
            assert 0 < point["cores_used"] <= point["processes"] * 1.01
        assert entry["points"][0]["speedup"] == 1.0
        first = entry["points"][0]["runs"]
        for point in entry["points"]:  # each round's ratio, to the same round's first count
            assert point["speedup_runs"] == pytest.approx(
                [rate / base for rate, base in zip(point["runs"], first)])
    for name in ("segalloc allocate + free", "segalloc dict get"):
        assert series[name]["checks"] == {"free_memory_back": True, "sane": True,
                                          "wrong_values": 0}
    headers, rows = scaling_rows(scaling)
    assert len(rows) == len(series) and all(len(row) == len(headers) for row in rows)
    spread = headers.index(f"{QUICK.processes[1]} / {QUICK.processes[0]} per round")
    for row, entry in zip(rows, scaling["series"]):
        if entry["status"] == "ok":
            ratios = entry["points"][1]["speedup_runs"]
            assert row[spread] == f"{min(ratios):.2f}" + (
                "" if min(ratios) == max(ratios) else f"-{max(ratios):.2f}")


def test_nothing_is_left_behind(document: dict[str, Any], scratch: Path) -> None:
    assert not [name for name in os.listdir(SHM_DIR) if TOKEN in name]
    assert list(scratch.iterdir()) == []


def test_a_missing_peer_is_reported_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lmdb", None)  # import lmdb now raises ImportError
    monkeypatch.setitem(sys.modules, "UltraDict", None)
    absent = run_peers(replace(QUICK, processes=(1,)), repeat=1, jobs=["dict", "scaling"],
                       token=f"{TOKEN}x")
    assert absent["not_installed"] == ["UltraDict", "lmdb"]
    dicts = _contenders(absent, "dict")
    for name, module in (("lmdb", "lmdb"), ("lmdb, one transaction", "lmdb"),
                         ("UltraDict", "UltraDict")):
        assert dicts[name]["status"] == "not installed"
        assert dicts[name]["reason"] == f"{module} not installed" and dicts[name]["ops"] == {}
    assert dicts["segalloc heap"]["verified"] and dicts["Manager dict"]["status"] == "ok"
    series = {entry["name"]: entry for entry in absent["scaling"]["series"]}
    assert series["lmdb get"]["status"] == series["UltraDict get"]["status"] == "not installed"
    assert series["segalloc dict get"]["verified"]
    (job,) = absent["jobs"]
    assert [row[1] for row in timed_rows(job)[1] if row[0] in ("lmdb", "UltraDict")] == [
        "lmdb not installed", "UltraDict not installed"]


def test_the_checks_catch_a_wrong_result() -> None:
    class Forgetful(dict):  # type: ignore[type-arg]
        """Loses every seventh store."""

        def __setitem__(self, key: str, value: int) -> None:
            if hash(key) % 7:
                super().__setitem__(key, value)

        def __getitem__(self, key: str) -> int:
            return int(self.get(key, 0))

    job = JOBS["dict"]
    _, checks = job.trial(Forgetful(), 100, QUICK)
    assert not job.verify(checks, 100)
    _, checks = job.trial({}, 100, QUICK)
    assert job.verify(checks, 100)
    lying = {"jobs": [{"job": "dict", "contenders": [
        {"name": "x", "status": "ok", "verified": False, "checks": checks}]}], "scaling": None}
    assert peers.verification_failures(lying) == [f"dict: x: result wrong: {checks}"]


def test_cli_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["peers", "--quick", "--job", "arrays", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "segalloc-peers" and [job["job"] for job in out["jobs"]] == ["arrays"]
    assert out["scaling"] is None
    assert main(["peers", "--quick", "--job", "arrays"]) == 0
    text = capsys.readouterr().out
    assert "arrays: 30 named float64 arrays" in text and "create / ref" in text
    assert "\x1b[" not in text  # plain text when piped


@pytest.mark.parametrize("argv, message", [
    (["--repeat", "0"], "segalloc: error: repeat must be at least 1, got 0\n"),
    (["--seconds", "0"], "segalloc: error: scaling needs process counts of at least 1 and a "
                         "positive duration\n"),
])
def test_cli_errors_are_one_line(argv: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["peers", "--quick", *argv]) == 1
    assert capsys.readouterr().err == message


def test_cli_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["peers", "--help"])
    text = capsys.readouterr().out
    for option in ("--job", "--repeat", "--quick", "--seconds", "--processes", "--json"):
        assert option in text
    with pytest.raises(SystemExit):
        main(["peers", "--processes", "0,2"])
    assert "process counts must be 1 or more" in capsys.readouterr().err


def test_bench_peers_puts_the_section_in_the_report(
        document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    asked: list[Any] = []

    def fake_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append((args, kwargs))
        return document

    monkeypatch.setattr(peers, "run_peers", fake_run)  # the run itself is tested above
    assert main(["bench", "--peers", "--no-scenarios", "--no-boost", "--no-shipped-traces",
                 "--algorithm", "best_fit", "--workload", "uniform", "--scale", "200",
                 "--out", str(tmp_path)]) == 0
    assert asked[0][1]["quick"] is True and asked[0][0][0] == QUICK
    assert "scaling: aggregate operations a second" in capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["peers"] == document
    markdown = (tmp_path / "report.md").read_text()
    assert "## Peers: segalloc beside what users would pick instead" in markdown
    for job in document["jobs"]:
        assert f"### {job['job']}: {job['count']:,} {job['title']}" in markdown
    assert "| segalloc heap |" in markdown
    html = (tmp_path / "report.html").read_text()
    assert "<h2>Peers: segalloc beside what users would pick instead</h2>" in html
    assert "<h3>Peers: time of one operation</h3>" in html
    assert "<h3>Peers: processes on one shared object</h3>" in html
    for stem in ("peers", "peers_scaling"):
        assert (tmp_path / "figures" / f"{stem}.svg").stat().st_size > 0


def test_a_crew_that_cannot_attach_fails_at_once() -> None:
    with pytest.raises(RuntimeError, match="segalloc dict get: a worker failed: FileNotFoundError"):
        peers._Crew(peers.SERIES["segalloc dict get"], f"segalloc-peers-{TOKEN}-absent", 10,
                    0.05, (1, 2))


def test_cli_reports_a_failed_worker_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def failing_run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("segalloc dict get: a worker ended (exit code -9) without reporting")

    monkeypatch.setattr(peers, "run_peers", failing_run)
    assert main(["peers", "--quick"]) == 1
    assert capsys.readouterr().err == (
        "segalloc: error: segalloc dict get: a worker ended (exit code -9) without reporting\n")


def test_unknown_job_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown job 'nope'; known: dict, list, arrays, scaling"):
        run_peers(QUICK, jobs=["nope"])
