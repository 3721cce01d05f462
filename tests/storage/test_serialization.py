"""Payload serialization of stored executions (SPEC §6): ``to_jsonable``, ``encode``, ``decode``, ``restore``.

What converts (pydantic models, dataclasses, datetimes, UUIDs, Decimals, enums, sets, tuples,
subclasses of the JSON types), what is restored from an annotation, and what is refused before
anything is written, with a message naming where the value came from (R30, R33).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import sys
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from stepwork import StepworkError
from stepwork.storage.serialization import decode, encode, restore, to_jsonable

WHERE = 'The output of step "make"'


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Cents(int):
    """A subclass of int."""


class Sku(str):
    """A subclass of str."""

    __slots__ = ()


class Ratio(float):
    """A subclass of float."""


class Brand(BaseModel):
    id: str
    created: dt.datetime
    tags: list[str] = []


class Order(BaseModel):
    id: uuid.UUID
    total: Decimal
    brand: Brand
    color: Color


@dataclasses.dataclass
class Line:
    sku: str
    quantity: int
    due: dt.date


@dataclasses.dataclass
class Shipment:
    lines: list[Line]
    sent: dt.datetime | None = None


ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


def rejected(value: Any, where: str = WHERE) -> StepworkError:
    """The error ``to_jsonable`` and ``encode`` raise for ``value`` (both must raise the same way)."""
    with pytest.raises(StepworkError) as from_jsonable:
        to_jsonable(value, where)
    with pytest.raises(StepworkError) as from_encode:
        encode(value, where)
    assert str(from_encode.value) == str(from_jsonable.value)
    err = from_jsonable.value
    assert err.type == "invalid_data"
    assert str(err).startswith(f"{where} cannot be stored:")
    return err


# -- to_jsonable: what converts ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 10**40, 1.5, -0.0, "", "text ✓ 😀", "a\u0000b",
                                   [], {}, [1, [2, [3]]], {"a": {"b": [None, True, 2.5]}}])
def test_plain_json_values_are_returned_as_they_are(value: Any) -> None:
    """JSON values (including huge ints, \\u0000 and non-BMP text) come back equal and of the same type."""
    out = to_jsonable(value)
    assert out == value
    assert type(out) is type(value)


def test_a_pydantic_model_becomes_its_json_mode_dump() -> None:
    """A pydantic model (nested, with UUID, Decimal, datetime and enum fields) becomes plain JSON values."""
    order = Order(id=ID, total=Decimal("10.10"), brand=Brand(id="b1", created=WHEN, tags=["x"]), color=Color.RED)
    out = to_jsonable(order, WHERE)
    assert out == {"id": str(ID), "total": "10.10",
                   "brand": {"id": "b1", "created": "2026-01-02T03:04:05.678901Z", "tags": ["x"]},
                   "color": "red"}
    assert json.loads(json.dumps(out)) == out


def test_a_dataclass_becomes_a_dict_of_its_fields_recursively() -> None:
    """A dataclass becomes a dict of its fields; nested dataclasses, dates and datetimes convert too."""
    shipment = Shipment([Line("sku-1", 2, dt.date(2026, 3, 4))], sent=WHEN)
    assert to_jsonable(shipment) == {"lines": [{"sku": "sku-1", "quantity": 2, "due": "2026-03-04"}],
                                     "sent": "2026-01-02T03:04:05.678901+00:00"}


def test_datetimes_dates_times_and_timedeltas() -> None:
    """datetime, date and time become ISO-8601 strings (a naive datetime stays without offset, an aware one
    keeps its offset); a timedelta becomes its total seconds."""
    naive = dt.datetime(2026, 1, 2, 3, 4, 5)
    aware = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30)))
    assert to_jsonable(naive) == "2026-01-02T03:04:05"
    assert to_jsonable(aware) == "2026-01-02T03:04:05-05:30"
    assert to_jsonable(dt.date(2026, 1, 2)) == "2026-01-02"
    assert to_jsonable(dt.time(3, 4, 5, 6)) == "03:04:05.000006"
    assert to_jsonable(dt.timedelta(days=1, seconds=2, microseconds=3)) == 86402.000003


def test_uuid_decimal_and_enums() -> None:
    """A UUID and a Decimal become their exact strings; an enum becomes its value (an IntEnum its int)."""
    assert to_jsonable(ID) == "12345678-1234-5678-1234-567812345678"
    assert to_jsonable(Decimal("0.1")) == "0.1"
    assert to_jsonable(Decimal("1E+40")) == "1E+40"
    assert to_jsonable(Color.BLUE) == "blue"
    out = to_jsonable(Level.HIGH)
    assert out == 2 and type(out) is int


def test_sets_and_tuples_become_lists_and_a_set_always_the_same_list() -> None:
    """Tuples become lists in order; a set or frozenset becomes a list whose order does not depend on how
    the set was built (so the stored text is deterministic)."""
    assert to_jsonable((1, "a", (2, 3))) == [1, "a", [2, 3]]
    built_up = set()
    for n in (30, 1, 200, 7):
        built_up.add(n)
    built_down = set()
    for n in (7, 200, 1, 30):
        built_down.add(n)
    out = to_jsonable(built_up)
    assert isinstance(out, list) and sorted(out) == [1, 7, 30, 200]
    assert out == to_jsonable(built_down) == to_jsonable(frozenset(built_up))
    assert encode({"tags": {"b", "a", "c"}}) == encode({"tags": {"c", "a", "b"}})


def test_subclasses_of_the_json_types_become_the_plain_types() -> None:
    """Subclasses of int, str and float become plain int, str and float (their JSON form is unambiguous)."""
    for value, plain in ((Cents(250), 250), (Sku("sku-1"), "sku-1"), (Ratio(0.5), 0.5)):
        out = to_jsonable(value)
        assert out == plain and type(out) is type(plain)
    assert to_jsonable({"price": Cents(3), "sku": Sku("x")}) == {"price": 3, "sku": "x"}


def test_enum_keys_with_string_values_become_their_values() -> None:
    """A mapping key that is an enum with a string value is stored as that string."""
    assert to_jsonable({Color.RED: 1, "blue": 2}) == {"red": 1, "blue": 2}


# -- to_jsonable / encode: what is refused ----------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), Ratio("nan"), Decimal("NaN"),
                                   Decimal("Infinity"), {"deep": [1, {"x": float("nan")}]}],
                         ids=["nan", "inf", "-inf", "float-subclass-nan", "decimal-nan", "decimal-inf", "nested"])
def test_nan_and_infinities_are_refused_naming_where(value: Any) -> None:
    """NaN and infinities (floats, float subclasses, Decimals, nested anywhere) have no JSON form: refused
    with invalid_data, the message naming where the value came from."""
    err = rejected(value)
    assert "has no JSON form" in str(err)


@pytest.mark.parametrize("key", [1, 2.5, None, True, ("a", 1), Level.LOW, ID],
                         ids=["int", "float", "none", "bool", "tuple", "int-enum", "uuid"])
def test_non_string_mapping_keys_are_refused_naming_where(key: Any) -> None:
    """A non-string mapping key would be silently turned into a string by JSON (and not come back): it is
    refused, naming where and the key."""
    err = rejected({key: "v"})
    assert f"the mapping key {key!r} is not a string" in str(err)


@pytest.mark.parametrize("value", [b"raw", bytearray(b"raw"), memoryview(b"raw")], ids=["bytes", "bytearray",
                                                                                         "memoryview"])
def test_bytes_are_refused_naming_where(value: Any) -> None:
    """Bytes-like values are refused (with what to do for bytes), naming where."""
    err = rejected({"blob": value})
    assert "cannot be stored" in str(err)


def test_bytes_refusal_says_what_to_do() -> None:
    """The message for bytes suggests encoding them first."""
    assert "encode them (e.g. base64) first" in str(rejected(b"\x00\x01"))


@pytest.mark.parametrize("value", [lambda: 1, object(), {1, 2}.__iter__(), Exception("x")],
                         ids=["lambda", "object", "iterator", "exception"])
def test_objects_of_unknown_types_are_refused_naming_their_type(value: Any) -> None:
    """An object of a type with no JSON form is refused, naming where and its type."""
    err = rejected({"value": value})
    t = type(value)
    assert f"{t.__module__}.{t.__qualname__}" in str(err)


@pytest.mark.parametrize("value", ["\ud800", ["ok", "x\udfffy"], {"k": "\udc00"}, {"\ud800": 1},
                                   {"outer": {"\udfff": [1]}}],
                         ids=["string", "in-list", "in-value", "as-key", "as-nested-key"])
def test_lone_surrogates_are_refused_naming_where(value: Any) -> None:
    """A string with a lone surrogate is not valid Unicode text (no database stores it): refused before
    anything is written, as a value and as a mapping key alike (R33)."""
    err = rejected(value)
    assert "lone surrogate" in str(err)


def test_a_circular_structure_is_refused_naming_where() -> None:
    """A dict that contains itself has no JSON form: refused with a StepworkError naming where, not a
    RecursionError (R30)."""
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    rejected(loop)
    chain: list[Any] = []
    chain.append([chain])
    rejected(chain)


def test_nesting_too_deep_to_read_back_is_refused_naming_where() -> None:
    """A structure nested 10,000 levels deep cannot be read back by a JSON decoder: refused with a
    StepworkError naming where, not a RecursionError (R33)."""
    value: Any = 0
    for _ in range(10_000):
        value = [value]
    rejected(value)


# -- encode / decode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, True, 0, 10**40, -(10**40), 1.25, "a\u0000b\u001f", "ünï 😀",
                                   {"k\u0000": ["x", {"y": None}]}, [[], {}, ""]])
def test_encode_then_decode_round_trips_json_values_exactly(value: Any) -> None:
    """encode gives JSON text that decode turns back into an equal value (huge ints, \\u0000, non-ASCII)."""
    text = encode(value, WHERE)
    assert isinstance(text, str)
    assert decode(text) == value
    assert json.loads(text) == value


def test_encode_is_compact_utf8_text_with_control_characters_escaped() -> None:
    """The text is compact, keeps non-ASCII characters as they are, and escapes \\u0000 (which PostgreSQL
    text columns cannot hold raw)."""
    text = encode({"a": "ü", "b": [1, 2.5], "nul": "\u0000"})
    assert text == '{"a":"ü","b":[1,2.5],"nul":"\\u0000"}'
    assert "\x00" not in text


def test_encode_converts_like_to_jsonable() -> None:
    """encode converts models, dataclasses, datetimes, UUIDs, Decimals and sets as to_jsonable does."""
    value = {"brand": Brand(id="b", created=WHEN), "line": Line("s", 1, dt.date(2026, 1, 1)), "id": ID,
             "total": Decimal("2.50"), "tags": ("x", "y")}
    assert decode(encode(value, WHERE)) == to_jsonable(value, WHERE)


def test_decode_of_none_is_none() -> None:
    """decode(None) is None (a step without a stored output)."""
    assert decode(None) is None
    assert decode("null") is None


# -- restore ---------------------------------------------------------------------------------------


def test_restore_to_a_pydantic_model() -> None:
    """A stored model (a dict) is validated back into the annotated model, nested types included."""
    order = Order(id=ID, total=Decimal("10.10"), brand=Brand(id="b1", created=WHEN), color=Color.RED)
    back = restore(decode(encode(order)), Order)
    assert isinstance(back, Order)
    assert back == order
    assert isinstance(back.brand.created, dt.datetime) and back.brand.created == WHEN
    assert back.total == Decimal("10.10") and str(back.total) == "10.10"


def test_restore_to_a_dataclass() -> None:
    """A stored dataclass is rebuilt as the annotated dataclass, with its nested dataclasses and dates."""
    shipment = Shipment([Line("sku-1", 2, dt.date(2026, 3, 4))], sent=WHEN)
    back = restore(decode(encode(shipment)), Shipment)
    assert back == shipment
    assert isinstance(back.lines[0], Line) and isinstance(back.lines[0].due, dt.date)


@pytest.mark.parametrize(("value", "annotation"), [
    (dt.datetime(2026, 1, 2, 3, 4, 5), dt.datetime),
    (dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2))), dt.datetime),
    (dt.date(2026, 1, 2), dt.date),
    (dt.time(3, 4, 5), dt.time),
    (dt.timedelta(hours=36, microseconds=5), dt.timedelta),
    (ID, uuid.UUID),
    (Decimal("0.10"), Decimal),
    (Decimal("-1E+40"), Decimal),
    (Color.BLUE, Color),
    ({"a", "b"}, set[str]),
    ((1, "x"), tuple[int, str]),
], ids=["naive-datetime", "aware-datetime", "date", "time", "timedelta", "uuid", "decimal", "decimal-exp", "enum",
        "set", "tuple"])
def test_restore_gives_back_the_annotated_type_exactly(value: Any, annotation: Any) -> None:
    """Through encode/decode and restore, a value of these types comes back equal and of its type (a naive
    datetime stays naive, an aware one keeps its offset, a Decimal keeps its digits)."""
    back = restore(decode(encode(value)), annotation)
    assert back == value
    assert type(back) is type(value)
    if isinstance(value, dt.datetime):
        assert back.utcoffset() == value.utcoffset()
    if isinstance(value, Decimal):
        assert str(back) == str(value)


def test_restore_leaves_values_unchanged_without_a_usable_annotation() -> None:
    """No annotation, Any, a None value, or a value that does not fit: the value is returned as it is."""
    assert restore({"a": 1}, None) == {"a": 1}
    assert restore({"a": 1}, Any) == {"a": 1}
    assert restore(None, Brand) is None
    assert restore("not a date", dt.datetime) == "not a date"
    assert restore({"id": "b1"}, Brand) == {"id": "b1"}  # missing a required field: kept as stored
    assert restore("x", int) == "x"


def test_restore_of_a_list_of_models() -> None:
    """A generic annotation such as ``list[Brand]`` restores each item."""
    brands = [Brand(id="a", created=WHEN), Brand(id="b", created=WHEN, tags=["t"])]
    back = restore(decode(encode(brands)), list[Brand])
    assert back == brands and all(isinstance(b, Brand) for b in back)


def test_round_trip_keeps_floats_exact() -> None:
    """Floats round-trip bit for bit (shortest repr), including tiny and huge ones."""
    for value in (0.1, 1e-300, 1.7976931348623157e308, -2.5e-8, math.pi):
        assert decode(encode(value)) == value


# -- integers too long for text (sys.get_int_max_str_digits) ------------------------------------------


HUGE = 10**5000  # 5,001 digits: past Python's default limit of 4,300 on int-to-text conversion


@pytest.mark.parametrize(("value", "path"), [
    (HUGE, ""),
    (-HUGE, ""),
    ({"totals": [1, {"grand": HUGE}]}, ' at ["totals"][1]["grand"],'),
    ([Cents(HUGE)], " at [0],"),
], ids=["positive", "negative", "nested", "int-subclass"])
def test_an_integer_too_long_for_text_is_refused_naming_where_and_the_path(value: Any, path: str) -> None:
    """Regression: such an integer raised a bare ValueError (as a workflow input) or failed a step without
    naming it (as a step output)."""
    message = str(rejected(value))
    assert message.startswith(f"{WHERE} cannot be stored:{path} an integer of 5,000 or more digits is longer "
                              "than the 4,300 digits Python converts to text")


def test_integers_up_to_the_text_limit_are_stored_and_no_limit_means_none() -> None:
    at_limit = 10**4299  # 4,300 digits
    assert decode(encode({"n": at_limit}, WHERE)) == {"n": at_limit}
    assert to_jsonable([at_limit, -at_limit]) == [at_limit, -at_limit]
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        assert encode(HUGE, WHERE) == str(HUGE)
        assert to_jsonable({"n": HUGE}) == {"n": HUGE}
    finally:
        sys.set_int_max_str_digits(before)


def test_other_refusals_name_the_path_too() -> None:
    assert 'at ["a"]["b"], the float nan has no JSON form' in str(rejected({"a": {"b": float("nan")}}))
    assert "at [2][0], bytes are not JSON" in str(rejected([1, 2, [b"x"]]))
    assert 'at ["k"], the mapping key 1 is not a string' in str(rejected({"k": {1: "v"}}))


async def test_the_engine_refuses_a_too_long_integer_naming_the_input_or_the_step(wf_name: str) -> None:
    from stepwork import WorkflowEngine, create_step, create_workflow

    huge = create_step("huge", lambda v: {"n": 10**5000})
    wf = create_workflow({"name": wf_name, "store": True}, lambda inp: huge(inp))
    async with WorkflowEngine("sqlite://") as engine:
        with pytest.raises(StepworkError) as info:
            await engine.run(wf, {"n": HUGE})
        assert info.value.type == "invalid_data"
        assert str(info.value).startswith(f'The input of workflow "{wf_name}" cannot be stored: at ["n"], an integer')
        result = await engine.run(wf, 1, throw_on_error=False)
        assert result.transaction.state in ("reverted", "failed")
        message = result.errors[0].error["message"]
        assert message.startswith('The output of step "huge" cannot be stored: at ["n"], an integer of 5,000')
