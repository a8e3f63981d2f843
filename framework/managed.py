"""The user-facing managed classes (``ManagedHeapMemory``, ...), made from registered backends.

Each registered ``Storage`` names the class users see (``managed_class_name``); this module
builds it as a ``Segment`` (or ``NamedSegment``) subclass bound to that storage, so a
third-party backend gets its managed class by registering, with no change here.
"""

from __future__ import annotations

from segalloc.interfaces import Storage
from segalloc.plugins import plugins
from segalloc.segment import NamedSegment, Segment

__all__ = ["managed_class", "managed_classes"]


def managed_class(storage_class: type[Storage]) -> type[Segment]:
    """The managed segment class over ``storage_class`` (built once per storage class)."""
    made = storage_class.__dict__.get("_managed_class")
    if made is None:
        base = NamedSegment if storage_class.named else Segment
        made = type(
            storage_class.managed_class_name,
            (base,),
            {
                "storage_class": storage_class,
                "__module__": "segalloc",
                "__doc__": f"A managed segment in {storage_class.name} storage.\n\n"
                f"Arguments: {storage_class.open.__doc__ or ''}\n"
                "Keyword ``algorithm`` picks the allocation algorithm (default best_fit).",
            },
        )
        type.__setattr__(storage_class, "_managed_class", made)
    assert isinstance(made, type) and issubclass(made, Segment)
    return made


def managed_classes() -> dict[str, type[Segment]]:
    """Managed classes of every registered backend, by class name."""
    return {
        cls.managed_class_name: managed_class(cls) for cls in plugins().backends.values()
    }
