"""What the compiled build is made of, read from ``setup.py`` (its one source), for the tests.

``setup.py``'s ``COMPILED`` lists the sources Cython compiles and ``PACKAGES`` the import
package each folder installs as; both are read here with ``ast`` (running ``setup.py`` would
build). ``compiled_extension`` finds a module's compiled extension in this install,
whichever build this process runs (``SEGALLOC_PURE_PYTHON=1`` only passes it over).
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
from pathlib import Path
from typing import Any

SETUP = Path(__file__).resolve().parent.parent / "setup.py"


def _setup_constant(name: str) -> Any:
    for node in ast.parse(SETUP.read_text()).body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            assert node.value is not None
            return ast.literal_eval(node.value)
    raise AssertionError(f"{SETUP} has no literal {name} = ...")


def compiled_modules() -> dict[str, str]:
    """The modules setup.py compiles: import name -> source path in the repository."""
    packages: dict[str, str] = _setup_constant("PACKAGES")
    modules = {}
    for source in _setup_constant("COMPILED"):
        folder, file = source.rsplit("/", 1)
        modules[f"{packages[folder]}.{file.removesuffix('.py')}"] = source
    return modules


def compiled_extension(module: str) -> Path | None:
    """The compiled extension of ``module`` (an import name) this install holds, if any."""
    package = module.rpartition(".")[0]
    path = None  # a top-level module (a third-party plugin's) is looked for on sys.path
    if package:
        parent = importlib.util.find_spec(package)
        assert parent is not None and parent.submodule_search_locations is not None, package
        path = list(parent.submodule_search_locations)
    spec = importlib.machinery.PathFinder.find_spec(module, path)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin) if isinstance(spec.loader, importlib.machinery.ExtensionFileLoader) else None


def compiled_installed(module: str) -> bool:
    """True when this install holds the compiled extension of ``module``."""
    return compiled_extension(module) is not None
