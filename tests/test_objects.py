"""Type identities (segalloc.objects): never a module path, a Structure's layout checked all the
way down, a class's own fixed id, and a spawned child that finds what ``__main__`` built."""

from __future__ import annotations

import ctypes
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segalloc import UNIQUE, ManagedHeapMemory, SegmentDict, SegmentList, SegmentString
from segalloc.objects import SegmentType, is_segment_type, type_id, type_name


def record(name: str, fields: list[tuple[Any, ...]], base: type = ctypes.Structure,
           **attributes: Any) -> type:
    """A ctypes record class named ``name`` (its qualified name too) with ``fields``."""
    return type(name, (base,), {"_fields_": fields, "__qualname__": name, **attributes})


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def seg() -> Any:
    segment = ManagedHeapMemory(16384)
    yield segment
    segment.close()


def unchanged(seg: Any, call: Any, match: str) -> str:
    """``call()`` raises ``TypeError`` matching ``match`` and changes no byte; its message."""
    before = bytes(seg.buffer)
    with pytest.raises(TypeError, match=match) as refused:
        call()
    assert bytes(seg.buffer) == before
    return str(refused.value)


# -- scalars: their storage, whatever the alias ---------------------------------------------------
def test_scalars_are_known_by_their_storage() -> None:
    assert type_id(ctypes.c_int32) == "c_int32" and type_id(ctypes.c_uint8) == "c_uint8"
    assert type_id(ctypes.c_double) == "c_double" and type_id(ctypes.c_bool) == "c_bool"
    for alias in (ctypes.c_long, ctypes.c_longlong, ctypes.c_ssize_t):
        if ctypes.sizeof(alias) == 8:
            assert type_id(alias) == "c_int64"
    assert type_id(ctypes.c_int) == f"c_int{8 * ctypes.sizeof(ctypes.c_int)}"
    assert type_id(ctypes.c_byte) == type_id(ctypes.c_int8) == "c_int8"
    assert type_id(ctypes.c_wchar) == f"c_wchar{8 * ctypes.sizeof(ctypes.c_wchar)}"
    swapped = "_be" if sys.byteorder == "little" else "_le"
    other_order = ctypes.c_int32.__ctype_be__ if swapped == "_be" else ctypes.c_int32.__ctype_le__
    assert type_id(other_order) == "c_int32" + swapped
    assert type_id(ctypes.c_int16 * 3) == "c_int16*3" and type_id(ctypes.c_int8 * 2 * 4) == "c_int8*2*4"


def test_an_alias_finds_the_object_another_spelling_built(seg: Any) -> None:
    seg.construct(ctypes.c_int32, "n", 7)
    assert seg.find(ctypes.c_int, "n")[0].value == 7  # c_int is c_int32 here
    with pytest.raises(TypeError, match="stored: c_int32\n  wanted: c_uint32"):
        seg.find(ctypes.c_uint32, "n")


# -- records: qualified name + layout -------------------------------------------------------------
def test_a_structure_id_shows_its_layout_and_no_module() -> None:
    point = record("Point", [("x", ctypes.c_int32), ("y", ctypes.c_double)])
    point.__module__ = "__main__"
    ident = type_id(point)
    point.__module__ = "__mp_main__"
    assert type_id(point) == ident
    name, digest_and_rest = ident.split("#")
    assert name == "Point" == type_name(point)
    assert digest_and_rest[8:] == "{x:c_int32@0,y:c_double@8}/16"
    assert "main" not in ident


def test_a_reordered_structure_is_refused_with_both_layouts(seg: Any) -> None:
    stored = record("Config", [("a", ctypes.c_int32), ("b", ctypes.c_int32)])
    reordered = record("Config", [("b", ctypes.c_int32), ("a", ctypes.c_int32)])
    assert ctypes.sizeof(stored) == ctypes.sizeof(reordered)
    seg.construct(stored, "config", 1, 2)
    seg.construct(stored, UNIQUE, 3, 4)
    for call in (seg.find, seg.find_or_construct, seg.destroy):
        for name in ("config", UNIQUE):
            message = unchanged(seg, lambda call=call, name=name: call(reordered, name),
                                "holds another type than Config")
            assert "stored: Config#" in message and "{a:c_int32@0,b:c_int32@4}/8" in message
            assert "wanted: Config#" in message and "{b:c_int32@0,a:c_int32@4}/8" in message
    found = seg.find(stored, "config")[0]
    assert (found.a, found.b) == (1, 2)
    unique = seg.find(stored, UNIQUE)[0]
    assert seg.get_instance_name(unique) == "Config" and (unique.a, unique.b) == (3, 4)


@pytest.mark.parametrize("change", ["inner order", "pack", "bit width", "byte order", "union"])
def test_every_layout_change_is_another_type(change: str) -> None:
    def outer(inner_fields: list[tuple[Any, ...]], **options: Any) -> type:
        base = options.pop("base", ctypes.Structure)
        inner = record("Inner", inner_fields, base)
        return record("Outer", [("flag", ctypes.c_uint8), ("inner", inner),
                                ("bits", ctypes.c_uint32, options.pop("bits", 3))], **options)

    fields = [("a", ctypes.c_int16), ("b", ctypes.c_int32)]
    changed = {
        "inner order": lambda: outer(fields[::-1]),
        "pack": lambda: outer(fields, _pack_=1),
        "bit width": lambda: outer(fields, bits=4),
        "byte order": lambda: record("Outer", fields, ctypes.BigEndianStructure
                                     if sys.byteorder == "little"
                                     else ctypes.LittleEndianStructure),
        "union": lambda: record("Outer", fields, ctypes.Union),
    }
    original = record("Outer", fields) if change in ("byte order", "union") else outer(fields)
    assert type_id(changed[change]()) != type_id(original)
    assert type_id(outer(fields)) == type_id(outer(fields))  # built again: the same id


def test_an_inherited_layout_lists_the_base_fields_first() -> None:
    base = record("Base", [("a", ctypes.c_int32)])
    derived = record("Derived", [("b", ctypes.c_int8)], base)
    assert type_id(derived).endswith("{a:c_int32@0,b:c_int8@4}/8")


def test_a_structure_that_points_to_itself_has_an_id() -> None:
    node = type("Node", (ctypes.Structure,), {})
    node._fields_ = [("value", ctypes.c_int32), ("next", ctypes.POINTER(node))]
    pointer_bits = ctypes.sizeof(ctypes.c_void_p)
    assert type_id(node).endswith(f"{{value:c_int32@0,next:LP_Node/{pointer_bits}@8}}/16")


def test_a_long_layout_is_cut_but_still_checked_in_full() -> None:
    names = [f"field_{i:03}" for i in range(60)]
    wide = record("Wide", [(name, ctypes.c_int32) for name in names])
    renamed = record("Wide", [(name, ctypes.c_int32) for name in names[:-1]] + [("last", ctypes.c_int32)])
    assert "..." in type_id(wide) and len(type_id(wide)) < 200
    assert type_id(wide) != type_id(renamed)  # the digest covers the field the text leaves out


STORAGE = st.sampled_from([
    (ctypes.c_int32, "i32"), (ctypes.c_int, "i32"), (ctypes.c_int64, "i64"),
    (ctypes.c_longlong, "i64"), (ctypes.c_uint32, "u32"), (ctypes.c_uint, "u32"),
    (ctypes.c_double, "f64"), (ctypes.c_float, "f32"), (ctypes.c_int8, "i8"), (ctypes.c_byte, "i8"),
])
FIELDS = st.lists(st.tuples(st.sampled_from("abcd"), STORAGE), min_size=1, max_size=4,
                  unique_by=lambda field: field[0])


@given(first=FIELDS, second=FIELDS, modules=st.sampled_from(["__main__", "__mp_main__", "app.x"]))
def test_same_ids_exactly_when_the_fields_store_the_same(
    first: list[tuple[str, tuple[type, str]]], second: list[tuple[str, tuple[type, str]]],
    modules: str,
) -> None:
    one = record("R", [(name, ctype) for name, (ctype, _) in first])
    other = record("R", [(name, ctype) for name, (ctype, _) in second])
    other.__module__ = modules
    same_storage = [(n, s) for n, (_, s) in first] == [(n, s) for n, (_, s) in second]
    assert (type_id(one) == type_id(other)) == same_storage


# -- a class's own fixed id -----------------------------------------------------------------------
def test_a_fixed_id_survives_a_move_and_a_rename(tmp_path: Path, seg: Any) -> None:
    (tmp_path / "old_home.py").write_text(textwrap.dedent("""
        import ctypes
        class Config(ctypes.Structure):
            _segalloc_type_id_ = "myapp.Config/2"
            _fields_ = [("port", ctypes.c_uint16), ("ratio", ctypes.c_double)]
    """))
    (tmp_path / "new_home.py").write_text(textwrap.dedent("""
        import ctypes
        class Settings:
            class Server(ctypes.Structure):
                _segalloc_type_id_ = "myapp.Config/2"
                _fields_ = [("port", ctypes.c_uint16), ("ratio", ctypes.c_double)]
            class Reordered(ctypes.Structure):
                _segalloc_type_id_ = "myapp.Config/2"
                _fields_ = [("ratio", ctypes.c_double), ("port", ctypes.c_uint16)]
    """))
    old = load_module(tmp_path / "old_home.py", "old_home").Config
    new = load_module(tmp_path / "new_home.py", "new_home").Settings
    seg.construct(old, "config", 8080, 0.5)
    seg.construct(old, UNIQUE, 9090, 0.25)
    assert new.Server.__qualname__ == "Settings.Server" and new.Server.__module__ == "new_home"
    found = seg.find(new.Server, "config")[0]
    assert (found.port, found.ratio) == (8080, 0.5)
    assert seg.find(new.Server, UNIQUE)[0].port == 9090
    assert seg.get_instance_name(seg.find(new.Server, UNIQUE)[0]) == "myapp.Config/2"
    unchanged(seg, lambda: seg.find(new.Reordered, "config"), "stored: myapp.Config/2#")


def test_a_fixed_id_is_the_class_own_and_well_formed() -> None:
    fixed = record("Base", [("a", ctypes.c_int32)], _segalloc_type_id_="app.Base/1")
    derived = record("Derived", [], fixed)
    assert type_name(fixed) == "app.Base/1" and type_name(derived) == "Derived"
    for bad in ("", "a#b", "x{", 7):
        with pytest.raises(TypeError, match="_segalloc_type_id_"):
            type_id(record("Bad", [("a", ctypes.c_int32)], _segalloc_type_id_=bad))


# -- containers of records ------------------------------------------------------------------------
def test_a_container_id_shows_the_element_layout(seg: Any) -> None:
    point = record("Point", [("x", ctypes.c_int32), ("y", ctypes.c_int32)])
    swapped = record("Point", [("y", ctypes.c_int32), ("x", ctypes.c_int32)])
    assert SegmentList[point].segment_type_id() == f"SegmentList[{type_id(point)}]"
    assert (SegmentDict[str, point].segment_type_id()
            == f"SegmentDict[{SegmentString.segment_type_id()},{type_id(point)}]")
    seg.construct(SegmentList[point], "points", [(1, 2)])
    message = unchanged(seg, lambda: seg.find(SegmentList[swapped], "points"), "stored: Segment")
    assert "{x:c_int32@0,y:c_int32@4}" in message and "{y:c_int32@0,x:c_int32@4}" in message


# -- another process started with spawn / forkserver ----------------------------------------------
SCRIPT = '''
import ctypes, multiprocessing, sys
import segalloc
from segalloc import UNIQUE, Mode, SegmentDict

class Config(ctypes.Structure):
    _fields_ = [("port", ctypes.c_uint16), ("ratio", ctypes.c_double)]

def child(path):
    with segalloc.ManagedMappedFile(Mode.OPEN_ONLY, path) as seg:
        config = seg.find(Config, "config")[0]
        unique = seg.find(Config, UNIQUE)[0]
        table = seg.find(SegmentDict[str, Config], "table")[0]
        assert __name__ == "__mp_main__" and Config.__module__ == "__mp_main__", __name__
        print(config.port, config.ratio, unique.port, table["a"].port, flush=True)

if __name__ == "__main__":
    path, method = sys.argv[1], sys.argv[2]
    with segalloc.ManagedMappedFile(Mode.CREATE_ONLY, path, 65536) as seg:
        seg.construct(Config, "config", 8080, 0.5)
        seg.construct(Config, UNIQUE, 9090, 0.0)
        seg.construct(SegmentDict[str, Config], "table", {"a": (7, 1.0)})
    process = multiprocessing.get_context(method).Process(target=child, args=(path,))
    process.start()
    process.join(120)
    sys.exit(process.exitcode)
'''


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_spawned_child_finds_a_structure_defined_in_main(tmp_path: Path, method: str) -> None:
    script = tmp_path / "make_config.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "segment.bin"), method],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8080", "0.5", "9090", "7"]


class _Complete:
    """Every SegmentType member, as classmethods."""

    @classmethod
    def segment_sizeof(cls) -> int:
        return 8

    segment_type_id = segment_construct = segment_attach = segment_destroy = segment_sizeof


def test_the_segment_type_check_answers_as_the_protocol_check() -> None:
    """``is_segment_type`` (what ``check_type`` asks, without typing's slow protocol check)
    gives the same answer as ``isinstance(cls, SegmentType)`` for containers, a complete
    class, classes missing a member or holding None for it, ctypes types and non-types; and
    ``construct`` refuses the incomplete ones."""
    missing = type("Missing", (), {name: getattr(_Complete, name)
                                   for name in ("segment_sizeof", "segment_type_id",
                                                "segment_construct", "segment_attach")})
    nulled = type("Nulled", (_Complete,), {"segment_attach": None})
    candidates: list[Any] = [SegmentDict[str, int], SegmentList[ctypes.c_int], SegmentString,
                             _Complete, missing, nulled, ctypes.c_int, int, _Complete(), None]
    answers = [is_segment_type(each) for each in candidates]
    assert answers == [isinstance(each, type) and isinstance(each, SegmentType)
                       for each in candidates]
    assert answers == [True, True, True, True, False, False, False, False, False, False]
    with ManagedHeapMemory(16384) as segment:
        for refused in (missing, nulled, int):
            with pytest.raises(TypeError, match="cannot live in a segment"):
                segment.construct(refused, "x")
        assert segment.num_named_objects() == 0
