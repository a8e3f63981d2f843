"""The plugin host: validation, duplicates, run-time registration, third-party entry points, and
``segalloc plugins`` saying which build each plugin runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from compiled_build import compiled_installed

from segalloc import (
    PURE_PYTHON,
    ManagedHeapMemory,
    MemoryAlgorithm,
    PluginHost,
    Storage,
    hookimpl,
    is_compiled,
    plugins,
)
from segalloc.bench.cli import main
from segalloc.managed import managed_classes


def _plugin(name: str, **hooks: Any) -> types.SimpleNamespace:
    """A plugin object whose hooks register the given classes."""
    namespace = types.SimpleNamespace(__name__=name)
    for hook, classes in hooks.items():

        def impl(register: Any, classes: Any = classes) -> None:
            for cls in classes:
                register(cls)

        setattr(namespace, hook, hookimpl(specname=hook)(impl))
    return namespace


@pytest.fixture
def host() -> Iterator[PluginHost]:
    """A host with the installed plugins; tests add their own and remove them in finally."""
    yield PluginHost()


def _renamed(base: type, name: str, **attrs: Any) -> type:
    return type(f"Renamed_{name}", (base,), {"name": name, **attrs})


def test_builtins_come_through_entry_points() -> None:
    host = PluginHost()
    assert "sequential_fit" in host.algorithms
    assert {"heap", "external"} <= set(host.backends)
    assert PluginHost(load_entry_points=False).algorithms == {}


def test_third_party_package_is_registered(example_plugin_site: Path) -> None:
    """tests/example_plugin is a separate distribution (installed for the session by conftest):
    its entry point registers it, in this process and in a child."""
    assert "implicit_fit" in plugins().algorithms, "the example plugin did not register"
    module = sys.modules[plugins().algorithm("implicit_fit").__module__]
    assert Path(module.__file__ or "").parent == example_plugin_site
    assert metadata.distribution("segalloc-example-implicit-fit").entry_points.select(
        group="segalloc", name="implicit_fit")
    seg = ManagedHeapMemory(4096, algorithm="implicit_fit")
    assert seg.allocate(100) % 16 == 0
    listed = subprocess.run([sys.executable, "-m", "segalloc", "plugins", "--json"],
                            capture_output=True, text=True, check=True)
    names = [entry["name"] for entry in json.loads(listed.stdout)["algorithms"]]
    assert "implicit_fit" in names and names == sorted(names)


def test_run_time_registration_and_unregistration(host: PluginHost) -> None:
    base = host.algorithm("sequential_fit")
    plugin = _plugin("extra", segalloc_register_algorithms=[_renamed(base, "extra_fit")])
    host.register(plugin)
    try:
        assert host.algorithm("extra_fit").name == "extra_fit"
    finally:
        host.unregister(plugin)
    with pytest.raises(ValueError, match="unknown algorithm 'extra_fit'; registered: .*sequential_fit"):
        host.algorithm("extra_fit")


def test_duplicate_names_are_refused_naming_both_plugins(host: PluginHost) -> None:
    base = host.algorithm("sequential_fit")
    plugin = _plugin("copycat", segalloc_register_algorithms=[_renamed(base, "sequential_fit")])
    host.register(plugin)
    try:
        with pytest.raises(ValueError, match="copycat.*already registered by plugin"):
            host.algorithms  # noqa: B018
    finally:
        host.unregister(plugin)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda base: int, "not a MemoryAlgorithm"),
        (lambda base: MemoryAlgorithm, "does not implement"),
        (lambda base: _renamed(base, ""), "no str 'name'"),
        (lambda base: _renamed(base, "x" * 40), "at most 31"),
        (lambda base: _renamed(base, "odd_align", ALIGNMENT=12), "power of two"),
        (lambda base: _renamed(base, "no_payload", PAYLOAD_PER_ALLOCATION=None), "PAYLOAD"),
    ],
)
def test_bad_algorithms_get_a_precise_type_error(host: PluginHost, make: Any, message: str) -> None:
    plugin = _plugin("broken", segalloc_register_algorithms=[make(host.algorithm("sequential_fit"))])
    host.register(plugin)
    try:
        with pytest.raises(TypeError, match=f"plugin 'broken'.*{message}"):
            host.algorithms  # noqa: B018
    finally:
        host.unregister(plugin)


def test_bad_backends_get_a_precise_type_error(host: PluginHost) -> None:
    heap = host.backend("heap")
    for cls, message in [(object, "not a Storage"), (Storage, "does not implement"),
                         (type("NoClass", (heap,), {"name": "h2", "managed_class_name": "not id"}),
                          "managed_class_name")]:
        plugin = _plugin("bad_backend", segalloc_register_backends=[cls])
        host.register(plugin)
        try:
            with pytest.raises(TypeError, match=message):
                host.backends  # noqa: B018
        finally:
            host.unregister(plugin)


def test_managed_classes_mirror_boosts_names() -> None:
    classes = managed_classes()
    assert {"ManagedHeapMemory", "ManagedExternalBuffer"} <= set(classes)
    import segalloc

    assert segalloc.ManagedHeapMemory is classes["ManagedHeapMemory"]
    with pytest.raises(AttributeError):
        segalloc.NoSuchThing  # noqa: B018


# -- which build each plugin runs -----------------------------------------------------------
def _listing(pure_python: bool) -> dict[str, Any]:
    """``segalloc plugins --json`` in a fresh process, with or without SEGALLOC_PURE_PYTHON=1."""
    env = {key: value for key, value in os.environ.items() if key != "SEGALLOC_PURE_PYTHON"}
    if pure_python:
        env["SEGALLOC_PURE_PYTHON"] = "1"
    done = subprocess.run([sys.executable, "-m", "segalloc", "plugins", "--json"], env=env,
                          capture_output=True, text=True, check=True, timeout=120)
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize("pure_python", [False, True], ids=["as-installed", "pure-python"])
def test_plugins_json_says_which_build_each_plugin_runs(pure_python: bool) -> None:
    """Compiled exactly where this install holds the module's extension, unless
    SEGALLOC_PURE_PYTHON=1, which runs everything interpreted."""
    listing = _listing(pure_python)
    assert listing["pure_python"] is pure_python
    for entry in listing["algorithms"] + listing["backends"]:
        module = entry["class"].rpartition(".")[0]
        assert entry["compiled"] is (not pure_python and compiled_installed(module)), entry


def test_plugins_build_follows_is_compiled(capsys: pytest.CaptureFixture[str]) -> None:
    host = plugins()
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["pure_python"] is PURE_PYTHON
    for entry in listing["algorithms"]:
        assert entry["compiled"] is is_compiled(host.algorithm(entry["name"]))
    for entry in listing["backends"]:
        assert entry["compiled"] is is_compiled(host.backend(entry["name"]))
    assert main(["plugins"]) == 0
    table = capsys.readouterr().out
    for name, cls in host.algorithms.items():
        build = "compiled" if is_compiled(cls) else "interpreted"
        assert re.search(rf"^{name} .* {build} +{re.escape(cls.__module__)}\.", table, re.M), table
    assert ("SEGALLOC_PURE_PYTHON=1: every module runs interpreted" in table) is PURE_PYTHON
