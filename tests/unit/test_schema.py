"""Record layouts: numpy dtypes (engine/schema.py) vs the compiled structs (cext/schema.pxd)."""
import numpy as np
import pytest

from cext import records
from engine import schema

VIEWS = {
    "market": records.view_market, "order": records.view_order, "reject": records.view_reject,
    "exec": records.view_exec, "book_top": records.view_book_top,
    "heartbeat": records.view_heartbeat, "position": records.view_position,
    "risk_state": records.view_risk_state,
}
LAST_FIELD = {"market": "px", "order": "t_send", "reject": "mono_origin", "exec": "mono_recv",
              "heartbeat": "started_ns", "position": "updated_ns", "risk_state": "state_since_ns"}


@pytest.mark.parametrize("name", sorted(schema.RECORDS))
def test_struct_matches_dtype(name):
    dt = schema.RECORDS[name]
    size, offsets = records.layouts()[name]
    assert size == dt.itemsize
    assert list(offsets) == list(dt.names), "field order differs between pxd and schema.py"
    assert offsets == {f: dt.fields[f][1] for f in dt.names}


@pytest.mark.parametrize("name", ["market", "order", "reject", "exec"])
def test_ring_records_are_whole_cache_lines_of_8_byte_words(name):
    dt = schema.RECORDS[name]
    assert dt.itemsize % 64 == 0
    # every field starts on an 8-byte boundary, except the packed header word(s)
    for f in dt.names:
        fdt, off = dt.fields[f][:2]
        if fdt.itemsize >= 8:
            assert off % 8 == 0, f"{name}.{f} at offset {off} is not 8-byte aligned"


def test_expected_sizes():
    assert schema.MARKET_DTYPE.itemsize == 64
    assert schema.REJECT_DTYPE.itemsize == 64
    assert schema.ORDER_DTYPE.itemsize == 128
    assert schema.EXEC_DTYPE.itemsize == 128
    assert schema.HEARTBEAT_DTYPE.itemsize == 64
    assert schema.POSITION_DTYPE.itemsize == 64
    assert schema.RISK_STATE_DTYPE.itemsize == 64
    assert schema.INTENT_DTYPE is schema.ORDER_DTYPE


@pytest.mark.parametrize("name", sorted(schema.RECORDS))
def test_arrays_pass_through_typed_memoryviews(name):
    dt = schema.RECORDS[name]
    a = np.zeros(5, dt)
    if name == "book_top":
        a[-1]["ask_qty"][9] = 123456789
        expect = 123456789
    else:
        a[-1][LAST_FIELD[name]] = 987654321
        expect = 987654321
    n, last = VIEWS[name](a)
    assert n == 5 and last == expect  # the struct reads the bytes numpy wrote


def _retyped(dt, field, new):
    return np.dtype([(n, new if n == field else dt.fields[n][0]) for n in dt.names])


@pytest.mark.parametrize("name", sorted(schema.RECORDS))
def test_drifted_layout_is_refused_by_the_memoryview(name):
    """A numpy layout that differs in a field's type, or in size, does not pass the typed
    memoryview. (Two same-typed fields swapped keep the buffer format; the name/offset
    comparison in test_struct_matches_dtype catches that case.)"""
    dt = schema.RECORDS[name]
    int8_fields = [n for n in dt.names if dt.fields[n][0] == np.dtype("<i8")]
    retyped = _retyped(dt, int8_fields[0], "<f8")
    assert retyped.itemsize == dt.itemsize
    with pytest.raises(ValueError, match="dtype mismatch"):
        VIEWS[name](np.zeros(2, retyped))
    wider = np.dtype([(n, dt.fields[n][0]) for n in dt.names] + [("extra", "<i8")])
    with pytest.raises(ValueError):
        VIEWS[name](np.zeros(2, wider))
    narrower = np.dtype([(n, dt.fields[n][0]) for n in dt.names[:-1]])
    with pytest.raises(ValueError):
        VIEWS[name](np.zeros(2, narrower))


def test_layout_hash_distinguishes_layouts():
    hashes = {schema.layout_hash(dt) for dt in schema.RECORDS.values()}
    assert len(hashes) == len(schema.RECORDS)
    assert schema.layout_hash(schema.MARKET_DTYPE) == schema.layout_hash(np.dtype(schema.MARKET_DTYPE.descr))
    with pytest.raises(TypeError):
        schema.layout_hash(np.dtype("<i8"))


def test_enum_values_are_distinct_within_groups():
    groups = {}
    for k, v in vars(schema).items():
        if k.isupper() and isinstance(v, int) and "_" in k:
            groups.setdefault(k.split("_")[0], []).append(v)
    for g in ("MK", "ACT", "OT", "EX", "LAYER", "TS", "PS", "FEED"):
        assert len(groups[g]) == len(set(groups[g])), g


@pytest.mark.parametrize("module", ["binance", "validate", "book", "risk", "matching"])
def test_compiled_modules_agree_with_schema_constants(module):
    import importlib
    mod = importlib.import_module(f"cext.{module}")
    for name, value in mod.SCHEMA_CONSTANTS.items():
        assert getattr(schema, name) == value, f"cext.{module}: {name} = {value}, engine.schema says {getattr(schema, name)}"


def test_compiled_enums_match_the_schema():
    got = records.enums()
    assert got == {k: getattr(schema, k) for k in got} and len(got) == 12
