"""The plugin host: algorithms and backends arrive through pluggy hooks, built-ins included.

A plugin (any module or object) implements one or both hooks; the host hands each hook a
``register`` callable that validates what it is given, naming the plugin in every error. The
built-in algorithms and backends are found exactly as third-party ones are: through the
``segalloc`` entry-point group.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import pluggy

from segalloc.interfaces import MemoryAlgorithm, Storage

__all__ = ["PluginHost", "hookspec", "plugins"]

hookspec = pluggy.HookspecMarker("segalloc")
_MAX_NAME_BYTES = 31  # fits the header's algorithm-name field with its NUL


class _HookSpecs:
    """The hooks a segalloc plugin may implement."""

    @hookspec
    def segalloc_register_algorithms(self, register: Callable[[type[MemoryAlgorithm]], None]) -> None:
        """Call ``register(cls)`` for each MemoryAlgorithm class the plugin provides."""

    @hookspec
    def segalloc_register_backends(self, register: Callable[[type[Storage]], None]) -> None:
        """Call ``register(cls)`` for each Storage class the plugin provides."""


_Plugin = TypeVar("_Plugin", type[MemoryAlgorithm], type[Storage])


def _check_name(plugin: str, cls: type, kind: str) -> str:
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"plugin {plugin!r}: {kind} {cls.__qualname__} has no str 'name'")
    if len(name.encode()) > _MAX_NAME_BYTES or not name.isprintable():
        raise TypeError(
            f"plugin {plugin!r}: {kind} name {name!r} must be printable and at most "
            f"{_MAX_NAME_BYTES} UTF-8 bytes"
        )
    return name


def _check_class(plugin: str, cls: object, base: type, kind: str) -> str:
    """A concrete subclass of ``base`` with a valid name; returns the name."""
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise TypeError(f"plugin {plugin!r} registered {cls!r}, which is not a {base.__name__} subclass")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise TypeError(f"plugin {plugin!r}: {kind} {cls.__qualname__} does not implement {missing}")
    return _check_name(plugin, cls, kind)


def _validate_algorithm(plugin: str, cls: Any) -> str:
    name = _check_class(plugin, cls, MemoryAlgorithm, "algorithm")
    for constant in ("layout_version", "ALIGNMENT", "PAYLOAD_PER_ALLOCATION", "MIN_SEGMENT_SIZE"):
        value = getattr(cls, constant, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TypeError(
                f"plugin {plugin!r}: algorithm {name!r} needs a non-negative int {constant}, has {value!r}"
            )
    alignment = cls.ALIGNMENT
    if alignment < 8 or alignment & (alignment - 1):
        raise TypeError(
            f"plugin {plugin!r}: algorithm {name!r} ALIGNMENT {alignment} is not a power of two >= 8"
        )
    return name


def _validate_backend(plugin: str, cls: Any) -> str:
    name = _check_class(plugin, cls, Storage, "backend")
    managed = getattr(cls, "managed_class_name", None)
    if not isinstance(managed, str) or not managed.isidentifier():
        raise TypeError(f"plugin {plugin!r}: backend {name!r} needs an identifier 'managed_class_name'")
    if not callable(getattr(cls, "open", None)):
        raise TypeError(f"plugin {plugin!r}: backend {name!r} has no classmethod 'open'")
    return name


class PluginHost:
    """Owns the pluggy manager and the validated registries built from it."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager("segalloc")
        self.manager.add_hookspecs(_HookSpecs)
        if load_entry_points:
            self._load_entry_points("segalloc")
        self.manager.check_pending()
        self._algorithms: dict[str, type[MemoryAlgorithm]] | None = None
        self._backends: dict[str, type[Storage]] | None = None

    def _load_entry_points(self, group: str) -> None:
        """Register every installed plugin of ``group``; one that fails to import is a
        ``RuntimeWarning`` naming its entry point (the others still load), not an error of
        every command."""
        for entry in importlib.metadata.entry_points(group=group):
            if self.manager.has_plugin(entry.name) or self.manager.is_blocked(entry.name):
                continue
            try:
                plugin = entry.load()
            except Exception as exc:  # any import-time failure of third-party code
                warnings.warn(f"plugin entry point {entry.name!r} ({entry.value}) failed to "
                              f"import and is skipped: {type(exc).__name__}: {exc}",
                              RuntimeWarning, stacklevel=2)
                continue
            self.manager.register(plugin, name=entry.name)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Add a plugin at run time (tests, embedding applications); named by ``name`` or its
        ``__name__``."""
        self.manager.register(plugin, name or getattr(plugin, "__name__", None))
        self.manager.check_pending()
        self._algorithms = self._backends = None

    def unregister(self, plugin: object) -> None:
        """Remove a plugin added with ``register``."""
        self.manager.unregister(plugin)
        self._algorithms = self._backends = None

    def _collect(self, hook_name: str, validate: Callable[[str, Any], str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        owner: dict[str, str] = {}
        hook = getattr(self.manager.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin = impl.plugin_name

            def register(cls: object, plugin: str = plugin) -> None:
                name = validate(plugin, cls)
                if name in found:
                    raise ValueError(
                        f"plugin {plugin!r}: {name!r} is already registered by plugin {owner[name]!r}"
                    )
                found[name] = cls
                owner[name] = plugin

            impl.function(register=register)
        return dict(sorted(found.items()))

    @property
    def algorithms(self) -> dict[str, type[MemoryAlgorithm]]:
        """Registered algorithm classes by name, sorted."""
        if self._algorithms is None:
            self._algorithms = self._collect("segalloc_register_algorithms", _validate_algorithm)
        return self._algorithms

    @property
    def backends(self) -> dict[str, type[Storage]]:
        """Registered storage classes by name, sorted."""
        if self._backends is None:
            self._backends = self._collect("segalloc_register_backends", _validate_backend)
        return self._backends

    def algorithm(self, name: str) -> type[MemoryAlgorithm]:
        """The algorithm class called ``name``; ``ValueError`` listing the known ones."""
        return _lookup(self.algorithms, name, "algorithm")

    def backend(self, name: str) -> type[Storage]:
        """The storage class called ``name``; ``ValueError`` listing the known ones."""
        return _lookup(self.backends, name, "backend")


def _lookup(table: dict[str, _Plugin], name: str, kind: str) -> _Plugin:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(table) or "none"
        raise ValueError(f"unknown {kind} {name!r}; registered: {known}") from None


_host: PluginHost | None = None


def plugins() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host
