"""The source server's rendering of rows as SQL literals, on the real servers.

Values that are easy to get wrong in a hand-made SQL literal travel from a
source table to a destination table whose text columns use other character
sets, and arrive equal value by value and byte by byte.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import datajoint as dj
import pytest

from link import link
from link.adapters.literals import (
    column_types,
    insert_statements,
    plan_rendering,
    row_literals,
)
from tests.conftest import SchemaNames
from tests.servers import Endpoints

pytestmark = pytest.mark.integration

COLUMNS = """
  id int NOT NULL,
  tiny tinyint, big bigint unsigned, money decimal(20,6),
  single float, twice double,
  words varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
  western varchar(100) CHARACTER SET latin1,
  letter char(3), prose mediumtext, mood enum('so so', 'it''s', 'ok'),
  tags set('a', 'b', 'c'), doc longtext,
  fixed binary(4), bytes varbinary(64), payload longblob,
  day date, moment datetime(6), clock time(3), year_ year, stamp timestamp NULL,
  bits bit(10),
  PRIMARY KEY (id)
"""

ROWS: list[tuple[Any, ...]] = [
    (
        1,
        -128,
        18446744073709551615,
        Decimal("-12345678901234.123456"),
        16777217.0,
        5e-324,
        'it\'s \\ a "quote" \n\t and \x00 nul, é, 日本, 🙂',
        "café, naïve",
        "abc",
        "x" * 70_000,
        "it's",
        "a,c",
        '{"a": [1, 2.5, "\\u00e9"]}',
        b"\x00'\\\x1a",
        b"\xff\xfe\x00\x01",
        bytes(range(256)) * 8,
        "2020-02-29",
        "2020-01-01 12:30:00.123456",
        "-838:59:58.999",
        2155,
        "2024-06-01 10:00:00",
        1023,
    ),
    (2, *[None] * 21),
    (
        3,
        0,
        0,
        Decimal("0"),
        -0.5,
        1.7976931348623157e308,
        "",
        "",
        "",
        "",
        "ok",
        "",
        "null",
        b"\x00\x00\x00\x00",
        b"",
        b"",
        "1000-01-01",
        "9999-12-31 23:59:59.999999",
        "00:00:00",
        1901,
        "2000-01-01 00:00:00",
        0,
    ),
]


@pytest.fixture
def tables(
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
    schema_names: SchemaNames,
) -> tuple[str, str]:
    """Create the source table (filled) and an empty destination table."""
    source = f"`{schema_names.source}`.`sample`"
    destination = f"`{schema_names.destination}`.`sample`"
    source_admin.connection.query(f"CREATE DATABASE `{schema_names.source}`")
    source_admin.connection.query(f"CREATE TABLE {source} ({COLUMNS})")
    destination_admin.connection.query(f"CREATE DATABASE `{schema_names.destination}`")
    # The destination's text columns use other character sets than the source's.
    destination_admin.connection.query(
        f"CREATE TABLE {destination} ({COLUMNS}) DEFAULT CHARSET=utf8mb4".replace(
            "CHARACTER SET latin1", "CHARACTER SET utf8mb4"
        ).replace("CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", "CHARACTER SET utf16")
    )
    placeholders = ", ".join(["%s"] * len(ROWS[0]))
    cursor = source_admin.connection._conn.cursor()
    cursor.executemany(f"INSERT INTO {source} VALUES ({placeholders})", ROWS)
    source_admin.connection._conn.commit()
    return source, destination


def _read(connection: dj.Connection, table: str) -> list[tuple[Any, ...]]:
    # FLOAT widened to DOUBLE: its own text is rounded to six digits.
    return list(
        connection.query(
            f"SELECT *, CAST(single AS DOUBLE), HEX(words), HEX(payload)"
            f" FROM {table} ORDER BY id"
        ).fetchall()
    )


@pytest.mark.parametrize("destination_mode", ["", "NO_BACKSLASH_ESCAPES"])
@pytest.mark.parametrize("passed", [(), ("payload", "words", "twice")])
def test_rows_rendered_by_the_source_arrive_equal(
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
    schema_names: SchemaNames,
    tables: tuple[str, str],
    destination_mode: str,
    passed: tuple[str, ...],
) -> None:
    """Rendered and passed-through columns alike arrive exactly, in any sql_mode."""
    source, destination = tables
    types = column_types(source_admin.connection, schema_names.source, "sample")
    names = [
        row[0]
        for row in source_admin.connection.query(
            f"SHOW COLUMNS FROM {source}"
        ).fetchall()
    ]
    rendering = plan_rendering(source, names, types, set(passed))
    assert rendering.passed == tuple(name for name in names if name in passed)
    rows = source_admin.connection.query(
        f"SELECT {rendering.select_list(types)} FROM {source}"
    ).fetchall()

    connection = destination_admin.connection
    if destination_mode:
        connection.query(
            f"SET SESSION sql_mode = CONCAT(@@sql_mode, ',{destination_mode}')"
        )
    try:
        literals = row_literals(rows, rendering, connection._conn.escape)
        # A small limit: every row goes in a statement of its own.
        statements = list(
            insert_statements(destination, rendering.insert_columns, literals, 100)
        )
        assert len(statements) == len(ROWS)
        for statement in statements:
            connection.query(statement)
    finally:
        connection.query("SET SESSION sql_mode = DEFAULT")

    arrived = _read(connection, destination)
    expected = _read(source_admin.connection, source)
    # words: stored as UTF-16 on the destination, compared as text only.
    word_column = names.index("words")
    assert [row[word_column] for row in arrived] == [
        row[word_column] for row in expected
    ]
    assert [
        row[:word_column] + row[word_column + 1 : -2] + row[-1:] for row in arrived
    ] == [row[:word_column] + row[word_column + 1 : -2] + row[-1:] for row in expected]


def test_an_unknown_type_passes_through_python(
    source_admin: dj.Instance, schema_names: SchemaNames
) -> None:
    """A column type without a rendering is read raw instead of guessed at."""
    source_admin.connection.query(f"CREATE DATABASE `{schema_names.source}`")
    source_admin.connection.query(
        f"CREATE TABLE `{schema_names.source}`.`shapes`"
        " (id int PRIMARY KEY, place point)"
    )
    types = column_types(source_admin.connection, schema_names.source, "shapes")
    rendering = plan_rendering("`x`.`shapes`", ["id", "place"], types, set())
    assert rendering.rendered == ("id",)
    assert rendering.passed == ("place",)


@contextmanager
def smaller_source_packets(source_admin: dj.Instance) -> Iterator[None]:
    """Lower the source server's max_allowed_packet to 1 MiB, and restore it.

    Connections opened inside take the smaller limit.
    """
    (packet,) = source_admin.connection.query(
        "SELECT @@GLOBAL.max_allowed_packet"
    ).fetchone()
    source_admin.connection.query("SET GLOBAL max_allowed_packet = 1048576")
    try:
        yield
    finally:
        source_admin.connection.query(f"SET GLOBAL max_allowed_packet = {packet}")


@pytest.mark.usefixtures("embedded_link_environment")
def test_rows_too_large_for_the_source_to_render_are_read_raw(
    endpoints: Endpoints,
    source_admin: dj.Instance,
    schema_names: SchemaNames,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A text longer than max_allowed_packet is NULL on the server, not a NULL value."""
    schema = source_admin.Schema(schema_names.source)

    @schema
    class Big(dj.Manual):  # type: ignore[misc]
        definition = """
        big_id : int32
        ---
        payload : longblob
        note = null : varchar(16)
        """

    # Hexadecimal, 600 KB become 1.2 MB: more than the 1 MiB set below.
    large, small = bytes(range(256)) * 2400, b"\x00\x01"
    Big.insert(
        [
            {"big_id": 1, "payload": large, "note": None},
            {"big_id": 2, "payload": small, "note": "small"},
        ]
    )
    with smaller_source_packets(source_admin):

        @link(
            endpoints.source_host,
            schema_names.source,
            schema_names.helper,
            "BigOutbound",
            schema_names.destination,
        )
        class Big:  # type: ignore[no-redef]
            """Rows, one of them large."""

        with caplog.at_level(logging.WARNING, logger="link.adapters.gateway"):
            result = Big().source.pull()

    assert result.counts.shared == 2
    assert "too large for the source server" in caplog.text
    rows = Big.to_dicts(order_by="big_id")
    assert [(row["payload"], row["note"]) for row in rows] == [
        (large, None),
        (small, "small"),
    ]


@pytest.mark.usefixtures("embedded_link_environment")
def test_a_batch_longer_than_one_bundle_is_read_row_by_row(
    endpoints: Endpoints,
    source_admin: dj.Instance,
    schema_names: SchemaNames,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each row fits in max_allowed_packet, their GROUP_CONCAT does not: it is cut."""
    schema = source_admin.Schema(schema_names.source)

    @schema
    class Medium(dj.Manual):  # type: ignore[misc]
        definition = """
        medium_id : int32
        ---
        payload : longblob
        """

    # Hexadecimal, each 300 KB become 600 KB: under the 1 MiB set below, while
    # the four rows together are 2.4 MB.
    payloads = {number: bytes([number]) * 300_000 for number in range(1, 5)}
    Medium.insert(
        {"medium_id": number, "payload": payload}
        for number, payload in payloads.items()
    )
    with smaller_source_packets(source_admin):

        @link(
            endpoints.source_host,
            schema_names.source,
            schema_names.helper,
            "MediumOutbound",
            schema_names.destination,
        )
        class Medium:  # type: ignore[no-redef]
            """Rows that fit one by one, not together."""

        with caplog.at_level(logging.WARNING, logger="link.adapters.gateway"):
            result = Medium().source.pull()

    assert result.counts.shared == 4
    assert "too large for the source server" not in caplog.text
    rows = Medium.to_dicts(order_by="medium_id")
    assert {row["medium_id"]: row["payload"] for row in rows} == payloads
