"""The README's examples run as written, and its set-up commands are the ones CI uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MAIN_COMMAND = "pip install -e . && segalloc bench"
TEST_COMMAND = ("apt-get update -q && apt-get install -y -q libboost-dev && "
                "pip install -e '.[test,numpy]' --config-settings editable_mode=strict && pytest")


def test_python_examples_run(readme_blocks: Callable[[str], list[str]]) -> None:
    blocks = readme_blocks("python")
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, str(ROOT / "README.md"), "exec"), {"__name__": "readme"})


def test_the_set_up_commands_are_the_ones_ci_runs(readme_blocks: Callable[[str], list[str]]) -> None:
    commands = [line.strip() for block in readme_blocks("sh") for line in block.splitlines()]
    assert MAIN_COMMAND in commands
    assert TEST_COMMAND in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y -qq libboost-dev" in ci
    assert "pip install -q -e '.[test,dask,numpy]' --config-settings editable_mode=strict\n" in ci
    assert "python -m pytest" in ci


def test_the_example_plugin_is_not_installed_into_the_users_environment(
    readme_blocks: Callable[[str], list[str]],
) -> None:
    """conftest installs it for the test session only, so `segalloc bench` never sweeps it."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "example_plugin" not in "".join(readme_blocks("sh")) + ci
