"""The README's examples run as written, and its set-up commands are the ones CI uses."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_python_examples_run(capsys: object) -> None:
    blocks = _blocks("python")
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})


def test_the_set_up_commands_are_the_ones_ci_runs() -> None:
    commands = [line.strip() for block in _blocks("sh") for line in block.splitlines()]
    assert "pip install -e . && segalloc bench" in commands
    test_command = ("apt-get update -q && apt-get install -y -q libboost-dev && "
                    "pip install -e '.[test]' ./tests/example_plugin && pytest")
    assert test_command in commands
    ci = (README.parent / ".ci" / "run").read_text()
    assert "apt-get install -y -qq libboost-dev" in ci
    assert "pip install -q -e '.[test,dask]' ./tests/example_plugin" in ci
    assert "python -m pytest" in ci
