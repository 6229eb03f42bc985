"""Contains the source server's rendering of rows as SQL literals for the copy.

A row copied through PyMySQL is decoded value by value in Python and escaped
again value by value for the INSERT: for a table of a few columns that is most
of a transfer worker's time. Instead, the source server writes each row as the
text of an SQL row constructor (``(1, 2, X'0a1b', ...)``) in C, and the worker
joins those texts into multi-row INSERT statements for the destination.

The literals depend neither on the connection's character set nor on the
destination's sql_mode: binary values travel as hexadecimal literals, text as
hexadecimal utf8mb4 literals with a character set introducer (the server
converts them to the column's character set), numbers and temporal values as
their plain text. Columns whose values must pass through Python (stored-object
metadata, which the link rewrites, and types this module does not know) are
read raw and escaped by PyMySQL.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import datajoint as dj

STATEMENT_BYTES = 4 * 1024 * 1024
"""Largest INSERT statement the copy sends; the server's max_allowed_packet caps it."""

_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_FLOATS = {"float", "double", "real"}
_TEXTS = {
    "char",
    "varchar",
    "tinytext",
    "text",
    "mediumtext",
    "longtext",
    "enum",
    "set",
    "json",
}
_BINARIES = {
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
}
_TEMPORALS = {"date", "datetime", "timestamp", "time", "year"}


def key_literal(value: object) -> str:
    """Return an SQL literal of a primary-key value, from the key codec or a table.

    Escaped here once per batch instead of by PyMySQL once per statement; like
    the rendered rows, the literals do not depend on the sql_mode.
    """
    if isinstance(value, bool):
        raise TypeError(f"a key value cannot be a bool: {value!r}")
    if isinstance(value, int | float):
        # repr: the shortest text that reads back as the same float
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return f"_utf8mb4 X'{value.encode('utf-8').hex()}'"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, datetime.datetime):
        # Like PyMySQL: the column keeps no time zone, so an offset is dropped.
        return f"'{value.replace(tzinfo=None).isoformat(sep=' ')}'"
    if isinstance(value, datetime.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, datetime.timedelta):
        # A TIME column's value as PyMySQL reads it; it may be negative.
        micro = abs(value) // datetime.timedelta(microseconds=1)
        seconds, micro = divmod(micro, 1_000_000)
        sign = "-" if value < datetime.timedelta(0) else ""
        hours, rest = divmod(seconds, 3600)
        return f"'{sign}{hours}:{rest // 60:02}:{rest % 60:02}.{micro:06}'"
    raise TypeError(f"no SQL literal for a key value of type {type(value).__name__}")


def keys_in(names: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Return a condition naming rows by their key values: ``(a, b) IN (...)``.

    One row-constructor IN list stays fast where one OR term per row slows down
    with the square of the row count. No rows give ``FALSE``.
    """
    listed = ",".join("(" + ", ".join(map(key_literal, row)) + ")" for row in rows)
    if not listed:
        return "FALSE"
    columns = ", ".join(f"`{name}`" for name in names)
    return f"({columns}) IN ({listed})"


def literal_expression(column: str, data_type: str) -> str | None:
    """Return SQL that renders the column's value as an exact SQL literal.

    Returns None for a type that must be read raw and escaped in Python.
    """
    quoted = f"`{column}`"
    kind = data_type.lower()
    if kind in _INTEGERS or kind == "decimal":
        text = f"CAST({quoted} AS CHAR)"
    elif kind in _FLOATS:
        # A DOUBLE's text is its shortest exact form; a FLOAT's own text is
        # rounded to six digits, so it is widened first (exactly).
        text = f"CAST(CAST({quoted} AS DOUBLE) AS CHAR)"
    elif kind in _TEXTS:
        text = f"CONCAT('_utf8mb4 X''', HEX(CONVERT({quoted} USING utf8mb4)), '''')"
    elif kind in _BINARIES:
        text = f"CONCAT('X''', HEX({quoted}), '''')"
    elif kind in _TEMPORALS:
        # Digits, dashes, colons, dots and a space: nothing needs escaping.
        text = f"CONCAT('''', {quoted}, '''')"
    elif kind == "bit":
        text = f"CAST({quoted} + 0 AS CHAR)"
    else:
        return None
    # Not IFNULL(text, ...): the server also gives NULL for a text longer than
    # its max_allowed_packet, which must not pass for a NULL value.
    return f"IF({quoted} IS NULL, 'NULL', {text})"


@dataclass(frozen=True)
class RowRendering:
    """How the rows of one table are read for the copy.

    ``rendered`` columns arrive as one text per row, written by the source
    server; ``passed`` columns arrive raw, after it, in their order. The
    destination's INSERT names the rendered columns first, then the passed.
    """

    table: str
    rendered: tuple[str, ...]
    passed: tuple[str, ...]

    @property
    def insert_columns(self) -> tuple[str, ...]:
        """Return the destination columns in the order the literals give them."""
        return self.rendered + self.passed

    def select_list(self, data_types: dict[str, str]) -> str:
        """Return the select list: the rendered text first, then the raw columns.

        The rendered text is NULL for a row too large for the source server to
        write as text (longer than its max_allowed_packet).
        """
        parts: list[str] = []
        if self.rendered:
            expressions = [
                str(literal_expression(name, data_types[name]))
                for name in self.rendered
            ]
            # CONCAT, not CONCAT_WS: a column too large to render makes the
            # whole row's text NULL, which the reader then sees.
            parts.append("CONCAT(" + ", ',', ".join(expressions) + ")")
        parts.extend(_raw(name, data_types[name]) for name in self.passed)
        return ", ".join(parts)

    def bundled_select_list(self, data_types: dict[str, str]) -> str | None:
        """Return a select list of the row count and the rows' texts joined.

        Only a table whose columns are all rendered has one. The texts are
        row constructors joined by BUNDLE_SEPARATOR; a row whose text is NULL
        is left out, which the count shows.
        """
        if self.passed:
            return None
        rows = self.select_list(data_types)
        return (
            f"COUNT(*), GROUP_CONCAT('(', {rows}, ')' SEPARATOR '{BUNDLE_SEPARATOR}')"
        )


BUNDLE_SEPARATOR = ";"
"""Joins the row constructors of a bundle: no rendered literal holds one, and
it means the same in every sql_mode."""


def unbundle(text: str | bytes | None) -> list[str]:
    """Return the row constructors of a bundle of rendered rows."""
    if text is None:
        return []
    return _text(text).split(BUNDLE_SEPARATOR)


def _raw(column: str, data_type: str) -> str:
    # MariaDB sends FLOAT values rounded to six significant digits; widened to
    # DOUBLE (exactly) they arrive whole.
    if data_type.lower() == "float":
        return f"CAST(`{column}` AS DOUBLE)"
    return f"`{column}`"


def column_types(connection: dj.Connection, schema: str, table: str) -> dict[str, str]:
    """Return each column's SQL data type, as the server names it."""
    rows = connection.query(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s",
        args=(schema, table),
    ).fetchall()
    return {str(name): str(data_type) for name, data_type in rows}


def plan_rendering(
    table: str,
    columns: Sequence[str],
    data_types: dict[str, str],
    pass_through: set[str],
) -> RowRendering:
    """Decide which columns the source server renders and which pass raw."""
    rendered: list[str] = []
    passed: list[str] = []
    for name in columns:
        if name in pass_through or literal_expression(name, data_types[name]) is None:
            passed.append(name)
        else:
            rendered.append(name)
    return RowRendering(table=table, rendered=tuple(rendered), passed=tuple(passed))


def row_literals(
    rows: Sequence[tuple[Any, ...]],
    rendering: RowRendering,
    escape: Callable[[Any], str],
) -> list[str]:
    """Return each fetched row as the text of an SQL row constructor."""
    if not rendering.passed:
        return [f"({_text(row[0])})" for row in rows]
    if not rendering.rendered:
        return ["(" + ", ".join(map(escape, row)) + ")" for row in rows]
    return [
        "(" + ", ".join([_text(row[0]), *map(escape, row[1:])]) + ")" for row in rows
    ]


def _text(value: str | bytes) -> str:
    # The rendered text is ASCII; PyMySQL returns it as bytes when the server
    # calls the CONCAT of a table's columns binary.
    return value if isinstance(value, str) else value.decode("ascii")


def insert_statements(
    table: str, columns: Sequence[str], literals: Sequence[str], limit: int
) -> Iterator[str]:
    """Yield INSERT statements of the row literals, of at most limit characters.

    A single row longer than the limit is sent alone; the server refuses it if
    it exceeds max_allowed_packet.
    """
    head = f"INSERT INTO {table} ({', '.join(f'`{name}`' for name in columns)}) VALUES "
    chunk: list[str] = []
    size = len(head)
    for literal in literals:
        if chunk and size + len(literal) + 1 > limit:
            yield head + ",".join(chunk)
            chunk = []
            size = len(head)
        chunk.append(literal)
        size += len(literal) + 1
    if chunk:
        yield head + ",".join(chunk)
