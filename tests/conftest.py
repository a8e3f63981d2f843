"""Shared test configuration: hypothesis profiles (``ci`` when CI=true), the build under test in
the session's header, the example third-party plugin installed for the session only, and
fixtures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: a separate distribution registering the algorithm ``implicit_fit`` through the ``segalloc``
#: entry-point group; the conformance suite runs on it like on the built-in algorithms
EXAMPLE_PLUGIN = Path(__file__).resolve().parent / "example_plugin"
EXAMPLE_ALGORITHM = "implicit_fit"

settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

_plugin_site = pytest.StashKey[Path]()
_saved_pythonpath = pytest.StashKey["str | None"]()


def pytest_report_header() -> str:
    """Which build the session tests: the compiled modules run, or SEGALLOC_PURE_PYTHON=1."""
    from compiled_build import compiled_installed, compiled_modules

    from segalloc import PURE_PYTHON

    modules = sorted(compiled_modules())
    built = [module for module in modules if compiled_installed(module)]
    missing = [module for module in modules if module not in built]
    if PURE_PYTHON:
        return (f"segalloc build: interpreted (SEGALLOC_PURE_PYTHON=1); compiled modules "
                f"installed but not run: {', '.join(built) or 'none'}")
    return (f"segalloc build: compiled: {', '.join(built) or 'none'}; not built, so "
            f"interpreted: {', '.join(missing) or 'none'}")


def pytest_configure(config: pytest.Config) -> None:
    """Install the example plugin into a temporary directory and put it on the path (this
    process's and, through ``PYTHONPATH``, its children's), so the entry points show it.

    It runs before collection because test modules read ``plugins().algorithms`` when imported.
    The user's environment never gets the plugin: a later ``segalloc bench`` sweeps only what
    the user installed.
    """
    scratch = Path(tempfile.mkdtemp(prefix="segalloc-example-plugin-"))
    source, site = scratch / "source", scratch / "site"
    shutil.copytree(EXAMPLE_PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode:
        shutil.rmtree(scratch, ignore_errors=True)
        raise pytest.UsageError(f"cannot install the example plugin from {EXAMPLE_PLUGIN} "
                                f"(the test extra provides setuptools):\n{done.stderr}")
    config.stash[_plugin_site] = site
    config.stash[_saved_pythonpath] = os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Take the example plugin off the paths and delete it."""
    site = config.stash.get(_plugin_site, None)
    if site is None:
        return
    if str(site) in sys.path:
        sys.path.remove(str(site))
    saved = config.stash[_saved_pythonpath]
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved
    shutil.rmtree(site.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def example_plugin_site(pytestconfig: pytest.Config) -> Path:
    """The directory the example plugin was installed into for this session."""
    return pytestconfig.stash[_plugin_site]


@pytest.fixture(scope="session")
def readme_blocks() -> Callable[[str], list[str]]:
    """The README's fenced code blocks in one language (``"python"``, ``"sh"``)."""

    def blocks(language: str) -> list[str]:
        return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)

    return blocks


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A fresh shared-memory name, removed afterwards whatever the test left."""
    from segalloc import ManagedSharedMemory

    name = f"segalloc-test-{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        ManagedSharedMemory.remove(name)
