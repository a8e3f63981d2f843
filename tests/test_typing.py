"""What a type checker sees of the public API: mypy, run as a user would on their own code."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

#: a user's mistakes that the real classes' signatures let mypy catch (line numbers matter)
MISTAKES = """\
from segalloc import ManagedHeapMemory, ManagedSharedMemory, Mode

heap = ManagedHeapMemory(1000)
heap.allocat(10)
reveal_type(ManagedSharedMemory)
ManagedHeapMemory(1000, "best_fit")
ManagedSharedMemory(Mode.OPEN_ONLY, "name", algorithm=3)
handle: int = heap.allocate(10, nothrow=True)
ManagedSharedMemory.grow("name", "4096")
"""


def _mypy(tmp_path: Path, files: dict[str, str]) -> list[str]:
    """mypy's report on ``files``, run in ``tmp_path`` with no configuration of ours."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "", "--no-error-summary",
         "--show-error-codes", "--hide-error-context", *files],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    lines = done.stdout.splitlines()
    assert not [line for line in lines if "import-not-found" in line or "import-untyped" in line], (
        "mypy cannot see segalloc: install it with --config-settings editable_mode=strict\n"
        + done.stdout
    )
    return lines


def test_mypy_sees_the_real_classes_and_flags_the_mistakes(
    tmp_path: Path, readme_blocks: Callable[[str], list[str]]
) -> None:
    examples = {f"readme_example_{n}.py": block for n, block in enumerate(readme_blocks("python"))}
    assert examples, "the README has no Python example"
    lines = _mypy(tmp_path, {**examples, "mistakes.py": MISTAKES})
    assert not [line for line in lines if line.startswith("readme_example")], "\n".join(lines)
    report: dict[int, str] = {}
    for line in lines:  # "mistakes.py:LINE: error: ..." (notes may follow on the same line number)
        number = int(line.split(":")[1])
        report[number] = report.get(number, "") + line + "\n"
    assert '"ManagedHeapMemory" has no attribute "allocat"  [attr-defined]' in report[4]
    revealed = re.search(r'Revealed type is "(.*)"', report[5])
    assert revealed, report[5]
    signature = revealed[1].replace("builtins.", "")  # older mypy spells builtins out
    assert signature.startswith("def (mode: segalloc.interfaces.Mode, name: str, size: ")
    assert ", *, algorithm: " in signature
    assert ", permissions: int =, trust_foreign: bool =, timeout: " in signature
    assert signature.endswith(") -> segalloc.managed.ManagedSharedMemory")
    assert "Too many positional arguments" in report[6] and "[call-arg]" in report[6]
    assert '"algorithm"' in report[7] and "[arg-type]" in report[7]
    assert '"int | None"' in report[8] and "[assignment]" in report[8]
    assert 'Argument 2 has incompatible type "str"; expected "int"  [arg-type]' in report[9]
    assert sorted(report) == [4, 5, 6, 7, 8, 9], "\n".join(lines)
