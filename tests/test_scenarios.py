"""The nine documented scenarios as harness cells, and ``segalloc scenarios``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segalloc import plugins
from segalloc.bench import scenarios
from segalloc.bench.boost_figures import BOOST_FIGURES, boost_figures
from segalloc.bench.cli import main
from segalloc.bench.scenarios import SCENARIOS, BackendKind, Scenario, Status, backend_kind, run_scenarios

ALGORITHMS = list(plugins().algorithms)
EVERY_BACKEND_SCENARIOS = [1, 2, 4, 5, 6]
CELL_KEYS = {"scenario", "title", "algorithm", "backend", "status", "reason", "figures", "boost",
             "boost_algorithm"}


def scenario(number: int) -> Scenario:
    (found,) = [s for s in SCENARIOS if s.number == number]
    return found


def test_the_nine_scenarios_are_registered_in_order() -> None:
    assert [s.number for s in SCENARIOS] == list(range(1, 10))
    assert all(s.title and s.heading for s in SCENARIOS)


@pytest.mark.parametrize("number", EVERY_BACKEND_SCENARIOS)
@pytest.mark.parametrize("backend", ["heap", "external"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_scenario_passes(algorithm: str, backend: str, number: int, tmp_path: Path) -> None:
    result = scenario(number).run(algorithm, backend, tmp_path)
    assert result.status is Status.PASSED, result.reason
    assert result.reason is None


@pytest.mark.parametrize("number", [1, 4, 6])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_figures_carry_boosts_names(algorithm: str, number: int, tmp_path: Path) -> None:
    figures = scenario(number).run(algorithm, "heap", tmp_path).figures
    assert set(BOOST_FIGURES[number]) <= set(figures)
    assert all(isinstance(value, int) for value in figures.values())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_resize_figures_count_8_byte_elements(algorithm: str, tmp_path: Path) -> None:
    figures = scenario(6).run(algorithm, "heap", tmp_path).figures
    first = figures["received_allocate_new"]
    assert 100 <= first <= 10000
    assert figures["received_expand_fwd"] >= 2 * first
    assert 2 * first <= figures["received_shrink_in_place"] <= 4 * first


@pytest.mark.parametrize(
    ("number", "backend", "needs"),
    [
        (3, "heap", "named backend"),
        (3, "external", "named backend"),
        (7, "heap", "file-backed"),
        (7, "external", "file-backed"),
        (8, "heap", "external"),
        (9, "external", "heap"),
    ],
)
def test_scenario_not_applicable_says_why(number: int, backend: str, needs: str,
                                          tmp_path: Path) -> None:
    result = scenario(number).run(ALGORITHMS[0], backend, tmp_path)
    assert result.status is Status.NOT_APPLICABLE
    assert result.reason is not None and needs in result.reason


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        ("heap", BackendKind.HEAP),
        ("external", BackendKind.EXTERNAL),
        ("shared_memory", BackendKind.NAMED),
        ("mapped_file", BackendKind.FILE),
    ],
)
def test_backend_kinds_of_the_built_in_backends(backend: str, kind: BackendKind,
                                                tmp_path: Path) -> None:
    assert backend_kind(plugins().backend(backend), tmp_path) is kind
    assert list(tmp_path.iterdir()) == []  # the probe of a named backend leaves nothing


@pytest.mark.parametrize(
    ("number", "backend"),
    [(3, "shared_memory"), (3, "mapped_file"), (7, "mapped_file"), (8, "external"), (9, "heap")],
)
def test_scenarios_of_one_backend_kind_run(number: int, backend: str, tmp_path: Path) -> None:
    """The code of the kind-specific scenarios, on the first slice's algorithm."""
    result = scenario(number).run("sequential_fit", backend, tmp_path)
    assert result.status is Status.PASSED, result.reason
    assert list(tmp_path.iterdir()) == []  # backing files removed afterwards


def test_named_backends_leave_no_shared_memory_objects(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    before = set(shm.iterdir())
    run_scenarios(ALGORITHMS, ["shared_memory"], tmp_path)
    assert set(shm.iterdir()) == before


@pytest.fixture
def free_does_nothing(monkeypatch: pytest.MonkeyPatch) -> str:
    """The first algorithm, patched so that deallocate frees nothing."""
    algorithm = ALGORITHMS[0]
    monkeypatch.setattr(plugins().algorithm(algorithm), "deallocate", lambda self, offset: None)
    return algorithm


def test_a_failed_check_fails_the_cell_with_its_reason(free_does_nothing: str,
                                                       tmp_path: Path) -> None:
    result = scenario(1).run(free_does_nothing, "heap", tmp_path)
    assert result.status is Status.FAILED
    assert result.reason is not None and "after deallocate" in result.reason
    assert "free_after_create" in result.figures  # figures seen before the failure are kept


def test_an_exception_fails_the_cell_naming_it(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    def explode(self: object, size: int, alignment: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(plugins().algorithm(ALGORITHMS[0]), "allocate_aligned", explode)
    result = scenario(4).run(ALGORITHMS[0], "external", tmp_path)
    assert result.status is Status.FAILED
    assert result.reason == "RuntimeError: boom"


def test_boost_figures_follow_the_counterpart() -> None:
    assert boost_figures(1, "best_fit")["free_after_create"] == 65312
    assert boost_figures(1, "sequential_fit")["free_after_create"] == 65328
    assert boost_figures(6, "sequential_fit")["received_expand_fwd"] == 3000
    assert boost_figures(9, "best_fit") == {"list_nodes_before_grow": 15,
                                            "list_nodes_after_grow": 36}
    assert boost_figures(9, "sequential_fit") == {}  # Boost measured none ("-")
    assert boost_figures(1, "segregated_fit") == {}  # no Boost counterpart
    assert boost_figures(2, "best_fit") == {}  # no figures for that scenario


def test_run_scenarios_cells(tmp_path: Path) -> None:
    cells = run_scenarios(ALGORITHMS, ["heap"], tmp_path)
    assert len(cells) == 9 * len(ALGORITHMS)
    for cell in cells:
        assert set(cell) == CELL_KEYS
        assert cell["backend"] == "heap"
        assert cell["status"] in {status.value for status in Status}
        assert (cell["reason"] is None) == (cell["status"] == "passed")
        assert cell["boost"] == boost_figures(cell["scenario"], cell["algorithm"])


def test_run_scenarios_refuses_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'nope'"):
        run_scenarios(["nope"], ["heap"], tmp_path)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        run_scenarios(ALGORITHMS, ["nope"], tmp_path)


@pytest.fixture
def first_scenarios(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only scenarios 1 and 2, which pass on every algorithm and backend."""
    monkeypatch.setattr(scenarios, "SCENARIOS", SCENARIOS[:2])


def test_cli_json_is_one_list_of_cells(capsys: pytest.CaptureFixture[str]) -> None:
    main(["scenarios", "--algorithm", ALGORITHMS[0], "--backend", "heap", "--backend",
          "external", "--json"])
    cells = json.loads(capsys.readouterr().out)
    assert isinstance(cells, list) and len(cells) == 18
    assert {cell["backend"] for cell in cells} == {"heap", "external"}
    assert sorted({cell["scenario"] for cell in cells}) == list(range(1, 10))
    for cell in cells:
        assert set(cell) == CELL_KEYS
        assert isinstance(cell["title"], str) and cell["algorithm"] == ALGORITHMS[0]
        assert cell["status"] in {"passed", "failed", "not_applicable"}
        assert all(isinstance(v, int) for v in cell["figures"].values())
        assert all(isinstance(v, int) for v in cell["boost"].values())


@pytest.mark.usefixtures("first_scenarios")
def test_cli_exits_0_when_every_cell_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "--backend", "heap", "--backend", "external"]) == 0
    out = capsys.readouterr().out
    assert "allocate and free" in out
    assert f"{2 * 2 * len(ALGORITHMS)} passed, 0 failed, 0 not applicable" in out


@pytest.mark.usefixtures("first_scenarios")
def test_cli_exits_1_when_a_cell_fails(free_does_nothing: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", "--algorithm", free_does_nothing, "--backend", "heap"]) == 1
    assert "free memory after deallocate" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--algorithm", "--backend"])
def test_cli_unknown_name_lists_the_known_ones(option: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios", option, "nope"]) == 1
    err = capsys.readouterr().err
    known = plugins().algorithms if option == "--algorithm" else plugins().backends
    assert "nope" in err and all(name in err for name in known)
