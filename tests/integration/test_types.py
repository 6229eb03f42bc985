"""Every non-stored DataJoint 2 type, declared on the destination and copied to it.

One source table (with a part table) carries every type the link declares
without a store, filled with values at the edges of each type. It is linked
with ``@link``, pulled in-process, and compared value by value and attribute by
attribute with the source.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datajoint as dj
import numpy as np
import pytest

from link import link
from link.adapters.gateway import LinkGateway
from link.adapters.servers import open_destination, open_source
from link.adapters.tables import declared_type_and_comment
from link.config import LinkSettings
from link.domain.events import PullRequested, RowCounts
from link.service_layer.pulls import start_pull, transfer_batch
from tests.conftest import SchemaNames
from tests.servers import Endpoints

pytestmark = pytest.mark.integration

RIGS = (uuid.UUID(int=1), uuid.UUID("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"))

EVERYTHING = r"""
# one row of every type; it's all here
item_id : int64                    # the key's integer part
item_uid : uuid                    # a uuid in the key
-> Kind
---
-> [nullable] Rig
i8 : int8
i16 : int16
i32 : int32
i64 : int64
u8 : tinyint unsigned
u16 : smallint unsigned
u24 : mediumint unsigned
u32 : int unsigned
u64 : bigint unsigned
m24 : mediumint
f32 : float32
f64 : float64
ratio = -0.5 : float64             # numeric default
price = 1.50 : decimal(8,3)        # a "decimal" # with hashes
name = 'it''s "quoted"' : varchar(64)   # both quotes in the default
path = 'C:\\dir' : varchar(32)     # a colon and a backslash in the default
code = "abc" : char(3)
mood = "so so" : enum('so so', 'it''s', 'ok')
slot = "10:30" : enum('10:00', '10:30')  # colons in the values
flag = 1 : bool
day = "2020-02-29" : date
moment = "2020-01-01 12:30:00" : datetime
precise = null : datetime(6)
clock = "12:34:56" : time
created = CURRENT_TIMESTAMP : timestamp
created3 = CURRENT_TIMESTAMP(3) : timestamp(3)
updated = CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3) : timestamp(3)
noticed = CURRENT_TIMESTAMP : datetime
maybe_ts = null : timestamp
doc : json
maybe_doc = null : json
other_uid = null : uuid
raw = null : bytes
native = null : longblob
arr = null : <blob>
att = null : <attach>
maybe_int = null : int32
count = 7 : int16                  # it's a count: # and "quotes"
unique index (other_uid)
index (i32, i16)
"""

PART = """
# a part whose own foreign keys point elsewhere
-> master
part_idx : int16
---
-> Rig.proj(spare_rig="rig_uid")
-> [nullable] Kind.proj(alt_kind="kind")
trace = null : <blob>
note = "" : varchar(255)
value = null : float32
"""


@dataclass(frozen=True)
class TypesPipeline:
    """The source tables of the types test."""

    Everything: Any
    schemas: tuple[str, ...]


@pytest.fixture
def other_source(source_admin: dj.Instance, schema_names: SchemaNames) -> Iterator[str]:
    """Return a second source schema; drop the schemas that reference it first."""
    name = f"{schema_names.source}_other"
    yield name
    for schema in (schema_names.helper, schema_names.source, name):
        source_admin.connection.query(f"DROP DATABASE IF EXISTS `{schema}`")


def declare_types(
    source_admin: dj.Instance, names: SchemaNames, other_name: str
) -> TypesPipeline:
    """Declare the types pipeline: a lookup in another schema, and Everything."""
    other = source_admin.Schema(other_name)
    schema = source_admin.Schema(names.source)

    @other
    class Rig(dj.Lookup):  # type: ignore[misc]
        definition = """
        # a recording rig, in another schema
        rig_uid : uuid          # the rig's 'id'
        ---
        rig_name : varchar(32)
        """
        contents = (
            {"rig_uid": RIGS[0], "rig_name": "left"},
            {"rig_uid": RIGS[1], "rig_name": "right"},
        )

    @schema
    class Kind(dj.Lookup):  # type: ignore[misc]
        definition = """
        kind : enum('so so', 'it''s', 'plain')   # with 'quotes' and spaces
        """
        contents = tuple({"kind": kind} for kind in ("so so", "it's", "plain"))

    context = {"Rig": Rig, "Kind": Kind}
    part = type("Part", (dj.Part,), {"definition": PART})
    everything = type(
        "Everything", (dj.Manual,), {"definition": EVERYTHING, "Part": part}
    )
    schema(everything, context=context)
    return TypesPipeline(Everything=everything, schemas=(names.source, other_name))


def fill_types(pipeline: TypesPipeline, attachment: Path) -> None:
    """Insert rows at the edges of every type, and rows that take the defaults."""
    table = pipeline.Everything
    largest = {
        "item_id": 9223372036854775807,
        "item_uid": uuid.UUID("00000000-0000-0000-0000-000000000001"),
        "kind": "it's",
        "rig_uid": RIGS[1],
        "i8": 127,
        "i16": 32767,
        "i32": 2147483647,
        "i64": 9223372036854775807,
        "u8": 255,
        "u16": 65535,
        "u24": 16777215,
        "u32": 4294967295,
        "u64": 18446744073709551615,
        "m24": 8388607,
        "f32": 3.5,
        "f64": 1.7976931348623157e308,
        "ratio": 1e-300,
        "price": decimal.Decimal("99999.999"),
        "name": "ünïcødé ✓ 日本 🐭 'single' \"double\" \\ back # hash",
        "path": "",
        "code": "xyz",
        "mood": "it's",
        "slot": "10:00",
        "flag": True,
        "day": datetime.date(9999, 12, 31),
        "moment": datetime.datetime(9999, 12, 31, 23, 59, 59),
        "precise": datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
        "clock": datetime.timedelta(hours=838, minutes=59, seconds=59),
        "created": datetime.datetime(2030, 6, 15, 12, 0, 0),
        "created3": datetime.datetime(2030, 6, 15, 12, 0, 0, 123000),
        "updated": datetime.datetime(2031, 1, 2, 3, 4, 5, 678000),
        "noticed": datetime.datetime(2020, 1, 1),
        "maybe_ts": datetime.datetime(2001, 9, 9, 1, 46, 40),
        "doc": {"a": [1, 2.5, {"b": None, "c": [True, False]}], "ü": "ß 'x' \"y\""},
        "maybe_doc": [],
        "other_uid": uuid.uuid4(),
        "raw": bytes(range(256)),
        "native": b"\x00\xff" * 5000,
        "arr": np.arange(12, dtype=np.float32).reshape(3, 4),
        "att": str(attachment),
        "maybe_int": -1,
        "count": 0,
    }
    smallest = {
        "item_id": -9223372036854775808,
        "item_uid": uuid.UUID("ffffffff-ffff-ffff-ffff-ffffffffffff"),
        "kind": "so so",
        "i8": -128,
        "i16": -32768,
        "i32": -2147483648,
        "i64": -9223372036854775808,
        "u8": 0,
        "u16": 0,
        "u24": 0,
        "u32": 0,
        "u64": 0,
        "m24": -8388608,
        "f32": -0.25,
        "f64": -2.2250738585072014e-308,
        "price": decimal.Decimal("-99999.999"),
        "name": "",
        "code": "",
        "mood": "ok",
        "flag": False,
        "day": datetime.date(1000, 1, 1),
        "moment": datetime.datetime(1000, 1, 1),
        "precise": datetime.datetime(1000, 1, 1, 0, 0, 0, 1),
        "clock": -datetime.timedelta(hours=838, minutes=59, seconds=59),
        "doc": [],
        "maybe_doc": {"nested": {"deep": {"deeper": [1, [2, [3, {"x": None}]]]}}},
        "raw": b"",
        "native": b"",
        "arr": {"dict": [1, "two", 3.0], "none": None},
        "count": -32768,
    }
    defaults = {
        "item_id": 0,
        "item_uid": uuid.uuid4(),
        "kind": "plain",
        **dict.fromkeys(("i8", "i16", "i32", "i64", "u8", "u16", "u24"), 1),
        **dict.fromkeys(("u32", "u64", "m24"), 2),
        "f32": 0.0,
        "f64": -0.0,
        "doc": {"only": "the required attributes are set"},
    }
    table.insert1(largest)
    table.insert1(smallest)
    table.insert1(defaults)
    part_rows = [
        {
            **{k: largest[k] for k in ("item_id", "item_uid", "kind")},
            "part_idx": 32767,
            "spare_rig": RIGS[0],
            "alt_kind": "it's",
            "trace": np.linspace(0, 1, 7),
            "note": "ünïcødé 'q' \"dq\"",
            "value": 1.5,
        },
        {
            **{k: largest[k] for k in ("item_id", "item_uid", "kind")},
            "part_idx": -32768,
            "spare_rig": RIGS[1],
        },
        {
            **{k: defaults[k] for k in ("item_id", "item_uid", "kind")},
            "part_idx": 0,
            "spare_rig": RIGS[1],
            "alt_kind": "so so",
            "trace": {"a": np.eye(2)},
            "value": -3.25,
        },
    ]
    for row in part_rows:  # insert() wants the same fields in every row
        table.Part.insert1(row)


@pytest.fixture
def attachment(tmp_path: Path) -> Path:
    """Return a small file to attach."""
    path = tmp_path / "upload" / "notes it's.txt"
    path.parent.mkdir()
    path.write_bytes("attached ✓\n".encode() + bytes(range(256)))
    return path


@pytest.fixture
def types_pipeline(
    source_admin: dj.Instance,
    schema_names: SchemaNames,
    other_source: str,
    attachment: Path,
) -> TypesPipeline:
    """Declare and fill the types pipeline on the source server."""
    pipeline = declare_types(source_admin, schema_names, other_source)
    fill_types(pipeline, attachment)
    return pipeline


def link_everything(endpoints: Endpoints, names: SchemaNames) -> Any:
    """Link the types table to the destination."""

    @link(
        endpoints.source_host,
        names.source,
        names.helper,
        "EverythingOutbound",
        names.destination,
    )
    class Everything:
        """Every type, shared by the source lab."""

    return Everything


def pull_in_process(table: Any, batch_size: int = 2) -> RowCounts:
    """Pull every source row with both pull steps run in-process."""
    context = table._link_context
    gateway = LinkGateway(
        context.ref,
        open_source(context.ref.source_host, LinkSettings()),
        open_destination(),
    )
    codec = gateway.codec
    # Keys travel as JSON, as the decorator sends them (uuids as strings).
    primary_keys = table().source.keys()
    keys = [codec.to_message(codec.canonical(key)) for key in primary_keys]
    request = PullRequested(request_id="types-1", link=context.ref, keys=keys)
    started = start_pull(request, gateway, batch_size=batch_size)
    counts = started.started.counts
    for batch in started.batches:
        counts = counts + transfer_batch(batch, gateway).counts
    return counts


def fetch_rows(table: Any, instance: dj.Instance, folder: Path) -> list[dict[str, Any]]:
    """Return all rows by primary key, attachments read back as name and bytes."""
    with instance.config.override(download_path=str(folder)):
        rows: list[dict[str, Any]] = table.to_dicts(order_by=table.primary_key)
    for row in rows:
        for name, attr in table.heading.attributes.items():
            is_attachment = attr.codec is not None and attr.codec.name == "attach"
            if is_attachment and row[name] is not None:
                path = Path(row[name])
                row[name] = (path.name, path.read_bytes())
    return rows


def same(want: Any, got: Any) -> bool:
    """Return whether two fetched values are equal, arrays and nesting included."""
    if isinstance(want, np.ndarray):
        return (
            isinstance(got, np.ndarray)
            and got.dtype == want.dtype
            and got.shape == want.shape
            and bool(np.array_equal(got, want))
        )
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and set(got) == set(want)
            and all(same(value, got[key]) for key, value in want.items())
        )
    if isinstance(want, list | tuple):
        return (
            type(got) is type(want)
            and len(got) == len(want)
            and all(same(a, b) for a, b in zip(want, got, strict=True))
        )
    return type(got) is type(want) and bool(got == want)


def assert_same_rows(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> None:
    """Assert two row lists are equal value by value, with the same Python types."""
    assert len(got) == len(want)
    for want_row, got_row in zip(want, got, strict=True):
        assert set(got_row) == set(want_row)
        for name, value in want_row.items():
            assert same(value, got_row[name]), f"{name}: {got_row[name]!r} != {value!r}"


def raw_rows(connection: dj.Connection, full_name: str) -> list[tuple[Any, ...]]:
    """Return the raw column values of a table, ordered by every column."""
    columns = [
        row[0] for row in connection.query(f"SHOW COLUMNS FROM {full_name}").fetchall()
    ]
    select = ", ".join(f"`{name}`" for name in columns)
    rows = connection.query(f"SELECT {select} FROM {full_name}").fetchall()
    return sorted(rows, key=repr)


@pytest.mark.usefixtures("link_environment")
def test_every_type_round_trips_value_by_value(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    types_pipeline: TypesPipeline,
    source_admin: dj.Instance,
    tmp_path: Path,
) -> None:
    table = link_everything(endpoints, schema_names)

    counts = pull_in_process(table)

    assert counts == RowCounts(shared=3)
    destination = table._link_context.destination
    source, target = types_pipeline.Everything, table
    for side in (source, target):
        assert len(side()) == 3
        assert len(side.Part()) == 3
    assert_same_rows(
        fetch_rows(source(), source_admin, tmp_path / "source"),
        fetch_rows(target(), destination, tmp_path / "destination"),
    )
    assert_same_rows(
        fetch_rows(source.Part(), source_admin, tmp_path / "source_part"),
        fetch_rows(target.Part(), destination, tmp_path / "destination_part"),
    )
    # The destination holds the values themselves, not just what the source shows.
    rows = fetch_rows(target(), destination, tmp_path / "values")
    smallest, defaults, largest = rows
    assert (largest["u64"], largest["i64"], smallest["i64"]) == (
        2**64 - 1,
        2**63 - 1,
        -(2**63),
    )
    assert largest["name"] == "ünïcødé ✓ 日本 🐭 'single' \"double\" \\ back # hash"
    assert largest["doc"]["a"][2] == {"b": None, "c": [True, False]}
    assert largest["precise"] == datetime.datetime(2024, 2, 29, 23, 59, 59, 999999)
    assert largest["raw"] == bytes(range(256))
    assert largest["att"][0] == "notes it's.txt"
    assert largest["updated"] == datetime.datetime(2031, 1, 2, 3, 4, 5, 678000)
    assert smallest["maybe_doc"]["nested"]["deep"]["deeper"][1][1][1] == {"x": None}
    assert smallest["u32"] == 0
    assert isinstance(smallest["item_uid"], uuid.UUID)
    assert defaults["name"] == 'it\'s "quoted"'
    assert defaults["path"] == "C:\\dir"
    assert defaults["ratio"] == -0.5
    assert defaults["price"] == decimal.Decimal("1.500")
    assert defaults["maybe_doc"] is None
    assert defaults["arr"] is None
    assert defaults["slot"] == "10:30"


@pytest.mark.usefixtures("link_environment")
def test_raw_column_values_are_the_same_on_both_servers(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    types_pipeline: TypesPipeline,
    source_admin: dj.Instance,
) -> None:
    table = link_everything(endpoints, schema_names)
    pull_in_process(table)
    destination = table._link_context.destination.connection

    for source_table, target_table in (
        (types_pipeline.Everything, table),
        (types_pipeline.Everything.Part, table.Part),
    ):
        assert raw_rows(destination, target_table.full_table_name) == raw_rows(
            source_admin.connection, source_table.full_table_name
        )


@pytest.mark.usefixtures("link_environment")
def test_float32_values_arrive_bit_for_bit(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    types_pipeline: TypesPipeline,
    source_admin: dj.Instance,
) -> None:
    # 16777217 and 1/3 need all of a float32's 24 bits; six digits lose them.
    source_admin.connection.query(
        f"UPDATE {types_pipeline.Everything.full_table_name}"
        " SET f32 = 16777216 WHERE item_id = 0"
    )
    source_admin.connection.query(
        f"UPDATE {types_pipeline.Everything.full_table_name}"
        " SET f32 = 1 / 3 WHERE item_id > 0"
    )
    table = link_everything(endpoints, schema_names)
    pull_in_process(table)
    destination = table._link_context.destination.connection
    query = "SELECT item_id, CAST(f32 AS DOUBLE) FROM {} ORDER BY item_id"

    source_values = source_admin.connection.query(
        query.format(types_pipeline.Everything.full_table_name)
    ).fetchall()
    target_values = destination.query(query.format(table.full_table_name)).fetchall()

    assert target_values == source_values


# Where a destination attribute may differ from its source attribute: the
# source loses the DataJoint type of foreign-key attributes (the destination
# keeps it, resolved through the parent), and the destination never
# auto-increments. Everything else must be equal.
COMPARED = ("type", "original_type", "in_key", "nullable", "default", "comment")


def expected_original_type(attr: Any, origin: Any) -> Any:
    """Return the original type the destination should show for a source attribute."""
    if attr.original_type is None and origin is not None:
        return origin.original_type
    return attr.original_type


@pytest.mark.usefixtures("link_environment")
def test_destination_heading_matches_the_source_attribute_by_attribute(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    types_pipeline: TypesPipeline,
    other_source: str,
) -> None:
    table = link_everything(endpoints, schema_names)
    source = types_pipeline.Everything
    rig = dj.FreeTable(source.connection, f"`{other_source}`.`#rig`").heading
    kind = dj.FreeTable(source.connection, f"`{schema_names.source}`.`#kind`").heading
    origins = {
        "rig_uid": rig["rig_uid"],
        "spare_rig": rig["rig_uid"],
        "kind": kind["kind"],
        "alt_kind": kind["kind"],
    }

    # A part inherits the master's key through -> master on both servers.
    inlined = {
        "everything": set(origins),
        "everything__part": {"spare_rig", "alt_kind"},
    }
    for source_table, target_table in ((source, table), (source.Part, table.Part)):
        want = source_table.heading.attributes
        got = target_table.heading.attributes
        assert sorted(got) == sorted(want)
        for name, attr in want.items():
            origin = origins[name] if name in inlined[target_table.table_name] else None
            for field in COMPARED:
                expected = getattr(attr, field)
                if field == "original_type":
                    expected = expected_original_type(attr, origin)
                actual = getattr(got[name], field)
                assert actual == expected, f"{name}.{field}: {actual!r} != {expected!r}"
        assert target_table.heading.indexes == source_table.heading.indexes
    # The types that the source keeps only in its parents' comments
    attributes = table.heading.attributes
    assert attributes["kind"].original_type == "enum('so so', 'it''s', 'plain')"
    assert attributes["rig_uid"].uuid
    assert table.Part.heading.attributes["alt_kind"].nullable
    # DataJoint cuts an enum's comment marker at the first colon of a value.
    assert declared_type_and_comment(attributes["slot"]) == (
        "enum('10:00', '10:30')",
        "colons in the values",
    )


def create_table_ddl(connection: dj.Connection, full_name: str) -> list[str]:
    """Return a table's DDL lines without constraints and column comments."""
    ddl = connection.query(f"SHOW CREATE TABLE {full_name}").fetchone()[1]
    lines = []
    for line in ddl.splitlines()[1:-1]:
        line = line.strip().rstrip(",")
        if line.startswith("CONSTRAINT"):
            continue
        lines.append(re.sub(r" COMMENT '(?:[^']|'')*'", "", line))
    return sorted(lines)


@pytest.mark.usefixtures("link_environment")
def test_destination_ddl_is_the_source_ddl_without_foreign_keys(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    types_pipeline: TypesPipeline,
    source_admin: dj.Instance,
) -> None:
    table = link_everything(endpoints, schema_names)
    destination = table._link_context.destination.connection

    for source_table, target_table in (
        (types_pipeline.Everything, table),
        (types_pipeline.Everything.Part, table.Part),
    ):
        assert create_table_ddl(
            destination, target_table.full_table_name
        ) == create_table_ddl(source_admin.connection, source_table.full_table_name)
    constraints = destination.query(
        "SELECT table_name, referenced_table_name"
        " FROM information_schema.referential_constraints"
        " WHERE constraint_schema = %s",
        args=(schema_names.destination,),
    ).fetchall()
    assert list(constraints) == [("everything__part", "everything")]


KEYED = """
# a primary key of every kind the key codec knows
name : varchar(32)
day : date
moment : datetime(6)
amount : decimal(8,2)
ratio : float64
uid : uuid
---
note = "" : varchar(16)
"""

KEYED_ROWS = [
    {
        "name": name,
        "day": datetime.date(2020, 2, 29),
        "moment": datetime.datetime(2024, 1, 2, 3, 4, 5, micro),
        "amount": decimal.Decimal(amount),
        "ratio": ratio,
        "uid": uuid.UUID(int=index),
        "note": f"row {index}",
    }
    for index, (name, micro, amount, ratio) in enumerate(
        [
            ("it's", 0, "1.50", 0.1),
            ('ünï 🐭 \\ "x"', 999999, "-999999.99", 1 / 3),
            ("", 1, "0", -1e-300),
            ("50% off", 500000, "12.00", 2.0**60),
        ]
    )
]


@pytest.mark.usefixtures("embedded_link_environment")
def test_keys_of_every_kind_are_pulled_and_deleted(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
) -> None:
    schema = source_admin.Schema(schema_names.source)

    @schema
    class Keyed(dj.Manual):  # type: ignore[misc]
        definition = KEYED

    Keyed.insert(KEYED_ROWS)

    @link(
        endpoints.source_host,
        schema_names.source,
        schema_names.helper,
        "KeyedOutbound",
        schema_names.destination,
    )
    class Keyed:  # type: ignore[no-redef]
        """Rows named by keys of every kind."""

    assert pull_in_process(Keyed) == RowCounts(shared=len(KEYED_ROWS))
    destination = Keyed.to_dicts(order_by=Keyed.primary_key)
    source = Keyed().source.to_dicts(order_by=Keyed.primary_key)
    assert destination == source
    assert len(destination) == len(KEYED_ROWS)

    deleted = (Keyed() & "note in ('row 1', 'row 3')").delete(prompt=False)

    assert deleted == 2
    assert sorted(row["note"] for row in Keyed.to_dicts()) == ["row 0", "row 2"]
    helper = source_admin.connection.query(
        f"SELECT COUNT(*) FROM `{schema_names.helper}`.`keyed_outbound`"
    ).fetchone()
    assert helper == (2,)
