"""Contains finding the source table and declaring the helper and destination tables.

The destination table is declared from the source table's heading, never from
its SQL: DataJoint types (``int32``, ``uuid``, ``<blob>``) are kept, foreign
keys to tables that the destination does not have are inlined as plain
attributes, and stored attributes are moved to the destination's stores.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import datajoint as dj
from datajoint.heading import Attribute

from link.domain.lifecycle import Process
from link.errors import SourceError

logger = logging.getLogger(__name__)

_TIER_PREFIX = re.compile(r"^(#|__|_)?")
_STORE_IN_CODEC = re.compile(r"^<(?P<codec>[a-z_]+)@(?P<store>[A-Za-z0-9_-]*)>$")
# MariaDB reports CURRENT_TIMESTAMP defaults as current_timestamp() (with an
# optional precision); DataJoint 2.3 then quotes them as strings, which would
# declare a column whose default is that text. They are SQL literals.
_CURRENT_TIMESTAMP = re.compile(r'^"?current_timestamp(\((?P<fsp>\d*)\))?"?$', re.I)

HELPER_DEFINITION = """
# the link's record of each source row it has touched
-> {source}
---
process = "NONE" : enum('PULL', 'DELETE', 'NONE')
is_flagged = "FALSE" : enum('TRUE', 'FALSE')
is_deprecated = "FALSE" : enum('TRUE', 'FALSE')
"""
"""The helper table of the older tool, column for column and value for value."""

assert {process.value for process in Process} == {"PULL", "DELETE", "NONE"}


def class_name_of(table_name: str) -> str:
    """Return the class name DataJoint gives a table: tier prefix dropped, CamelCase."""
    bare = _TIER_PREFIX.sub("", table_name, count=1)
    return "".join(word.capitalize() for word in bare.split("_"))


def quote(schema: str, table: str) -> str:
    """Return the quoted full name of a table."""
    return f"`{schema}`.`{table}`"


@dataclass(frozen=True)
class SourceTables:
    """The source table of a link and its part tables, by database name."""

    schema: str
    master: str
    parts: tuple[str, ...]


def find_source_tables(
    connection: dj.Connection, schema: str, class_name: str
) -> SourceTables:
    """Find the source table whose class name is class_name, with its parts."""
    rows = connection.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        args=(schema,),
    ).fetchall()
    if not rows:
        raise SourceError(
            f"The source schema {schema!r} does not exist or the link user may not"
            " read it (it needs SELECT and REFERENCES on it)."
        )
    names = sorted(row[0] for row in rows)
    masters = [
        name
        for name in names
        if "__" not in name.lstrip("_#") and not name.startswith("~")
    ]
    matches = [name for name in masters if class_name_of(name) == class_name]
    if not matches:
        raise SourceError(
            f"The source schema {schema!r} has no table for class {class_name!r};"
            f" it has {', '.join(class_name_of(name) for name in masters) or 'none'}."
        )
    master = matches[0]
    parts = tuple(name for name in names if name.startswith(master + "__"))
    return SourceTables(schema=schema, master=master, parts=parts)


def _referenced_column(
    connection: dj.Connection, schema: str, table: str, column: str
) -> tuple[str, str, str] | None:
    row = connection.query(
        "SELECT referenced_table_schema, referenced_table_name, referenced_column_name"
        " FROM information_schema.key_column_usage WHERE table_schema = %s"
        " AND table_name = %s AND column_name = %s"
        " AND referenced_table_name IS NOT NULL LIMIT 1",
        args=(schema, table, column),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def resolve_type(
    connection: dj.Connection, schema: str, table: str, attribute: Attribute
) -> str:
    """Return the DataJoint type to declare an attribute with.

    Attributes inherited through a foreign key lose their DataJoint type in the
    column comment, so their type is looked up in the parent they come from.
    """
    if attribute.codec is not None:
        return str(attribute.type)
    if attribute.uuid:
        return "uuid"
    if attribute.original_type:
        return str(attribute.original_type)
    reference = _referenced_column(connection, schema, table, attribute.name)
    if reference is not None:
        parent_schema, parent_table, parent_column = reference
        parent = dj.FreeTable(connection, quote(parent_schema, parent_table))
        origin = parent.heading.attributes[parent_column]
        return resolve_type(connection, parent_schema, parent_table, origin)
    return str(attribute.type)


def remap_store(type_spec: str, stores: Mapping[str, str]) -> str:
    """Move a stored attribute's type to its destination store."""
    match = _STORE_IN_CODEC.match(type_spec)
    if match is None:
        return type_spec
    store = match["store"]
    if store not in stores:
        raise SourceError(
            f"The stored attribute type {type_spec} names store"
            f" {store or '(default)'!r}, which the link's stores mapping does not name."
        )
    return f"<{match['codec']}@{stores[store]}>"


def _default(attribute: Attribute) -> str | None:
    if attribute.nullable:
        return "null"
    if attribute.default is None:
        return None
    default = str(attribute.default)
    current = _CURRENT_TIMESTAMP.match(default)
    if current is not None:
        return "CURRENT_TIMESTAMP" + (f"({current['fsp']})" if current["fsp"] else "")
    return default


def attribute_line(
    connection: dj.Connection,
    schema: str,
    table: str,
    attribute: Attribute,
    stores: Mapping[str, str],
) -> str:
    """Return one definition line that declares the attribute on the destination."""
    type_spec = remap_store(resolve_type(connection, schema, table, attribute), stores)
    default = _default(attribute)
    head = attribute.name if default is None else f"{attribute.name} = {default}"
    comment = (attribute.comment or "").replace("\n", " ")
    return f"{head} : {type_spec}" + (f"  # {comment}" if comment else "")


def destination_definition(
    connection: dj.Connection,
    schema: str,
    table: str,
    stores: Mapping[str, str],
    *,
    master_key: tuple[str, ...] = (),
) -> str:
    """Return a definition of the table without foreign keys, for the destination.

    For a part table, master_key names the master's primary key: those
    attributes are declared through ``-> master`` instead.
    """
    free_table = dj.FreeTable(connection, quote(schema, table))
    heading = free_table.heading
    comment = (heading.table_status or {}).get("comment", "") or ""
    lines = [f"# {comment}"] if comment else []
    if master_key:
        lines.append("-> master")
    visible = [attr for attr in heading.attributes.values() if not attr.is_hidden]
    primary = [attr for attr in visible if attr.in_key and attr.name not in master_key]
    secondary = [attr for attr in visible if not attr.in_key]
    lines += [
        attribute_line(connection, schema, table, attr, stores) for attr in primary
    ]
    lines.append("---")
    lines += [
        attribute_line(connection, schema, table, attr, stores) for attr in secondary
    ]
    for columns, index in heading.indexes.items():
        if index["unique"] and set(columns) != set(heading.primary_key):
            lines.append(f"unique index ({', '.join(columns)})")
    return "\n".join(lines) + "\n"


def declare_helper(
    source: dj.Instance,
    helper_schema: str,
    helper_class: str,
    source_tables: SourceTables,
) -> dj.Table:
    """Declare the helper table if it is missing; reuse one the older tool made."""
    existing = source.connection.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        args=(helper_schema,),
    ).fetchall()
    for (name,) in existing:
        if class_name_of(name) == helper_class and "__" not in name.lstrip("_#"):
            return dj.FreeTable(source.connection, quote(helper_schema, name))
    source_table = dj.FreeTable(
        source.connection, quote(source_tables.schema, source_tables.master)
    )
    schema = source.Schema(helper_schema, context={"SourceTable": source_table})
    helper: type[Any] = type(
        helper_class,
        (dj.Manual,),
        {"definition": HELPER_DEFINITION.format(source="SourceTable")},
    )
    declared = schema(helper)
    logger.info("declared helper table %s", declared.full_table_name)
    return dj.FreeTable(source.connection, declared.full_table_name)


def declare_destination(
    destination: dj.Instance,
    source: dj.Connection,
    destination_schema: str,
    class_name: str,
    source_tables: SourceTables,
    stores: Mapping[str, str],
    bases: tuple[type, ...],
    namespace: Mapping[str, Any],
) -> type[Any]:
    """Declare the destination table and its parts, if missing, and return its class.

    The class is a Manual table whatever the source's tier: the destination
    rows are written by the link alone, never populated.
    """
    schema_name = source_tables.schema
    master_definition = destination_definition(
        source, schema_name, source_tables.master, stores
    )
    master_heading = dj.FreeTable(
        source, quote(schema_name, source_tables.master)
    ).heading
    master_key = tuple(master_heading.primary_key)
    parts: dict[str, type[Any]] = {}
    for part_table in source_tables.parts:
        suffix = part_table[len(source_tables.master) + 2 :]
        if "__" in suffix:
            continue
        definition = destination_definition(
            source, schema_name, part_table, stores, master_key=master_key
        )
        part_name = class_name_of(suffix)
        parts[part_name] = type(part_name, (dj.Part,), {"definition": definition})
    attributes = {**namespace, "definition": master_definition, **parts}
    table_class: type[Any] = type(class_name, (*bases, dj.Manual), attributes)
    schema = destination.Schema(destination_schema)
    return schema(table_class)  # type: ignore[no-any-return]
