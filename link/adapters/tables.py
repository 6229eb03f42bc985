"""Contains finding the source table and declaring the helper and destination tables.

The destination table is declared from the source table's heading, never from
its SQL: DataJoint types (``int32``, ``uuid``, ``<blob>``) are kept, foreign
keys to tables that the destination does not have are inlined as plain
attributes, and stored attributes are moved to the destination's stores. A
destination table that already exists is checked against the same heading
before anything is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import datajoint as dj
from datajoint.errors import AccessError
from datajoint.heading import Attribute
from datajoint.utils import from_camel_case

from link.domain.lifecycle import Process
from link.errors import DestinationError, SourceError

logger = logging.getLogger(__name__)

_TIER_PREFIX = re.compile(r"^(#|__|_)?")
_STORE_IN_CODEC = re.compile(r"^<(?P<codec>[a-z_]+)@(?P<store>[A-Za-z0-9_-]*)>$")
# MariaDB reports CURRENT_TIMESTAMP defaults as current_timestamp() (with an
# optional precision); DataJoint 2.3 then quotes them as strings, which would
# declare a column whose default is that text. They are SQL literals.
_CURRENT_TIMESTAMP = re.compile(r'^"?current_timestamp(\((?P<fsp>\d*)\))?"?$', re.I)
_ON_UPDATE = re.compile(
    r"on update current_timestamp(\((?P<fsp>\d*)\))?", re.I | re.ASCII
)
_TEMPORAL = re.compile(r"^(datetime|timestamp)(\s*\(\d*\))?$", re.I)
# Quoted strings are kept as they are when a type is normalised for comparison.
_TYPE_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[^'\"]+")
# DataJoint reads a column comment ":type:comment" up to the second colon, so an
# enum with a colon in a value comes back cut; the marker is read again here.
_ENUM_MARKER = re.compile(
    r"^:(?P<type>enum\s*\((?:'(?:[^']|'')*'|[\s,])*\)):(?P<comment>.*)$"
)
# Server error numbers that mean the user lacks a privilege.
_DENIED = (1044, 1142, 1143)

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
    if len(matches) > 1:
        # Tables of different tiers can share a class name; guessing would link
        # the wrong one.
        raise SourceError(
            f"The source schema {schema!r} has several tables for class"
            f" {class_name!r}: {', '.join(matches)}."
        )
    master = matches[0]
    parts = tuple(name for name in names if name.startswith(master + "__"))
    return SourceTables(schema=schema, master=master, parts=parts)


def _part_suffix(source_tables: SourceTables, part_table: str) -> str:
    return part_table[len(source_tables.master) + 2 :]


def _direct_parts(source_tables: SourceTables) -> list[str]:
    # A name with a further "__" belongs to a deeper nesting that DataJoint
    # does not declare; such tables are not copied either.
    return [
        part
        for part in source_tables.parts
        if "__" not in _part_suffix(source_tables, part)
    ]


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


def _parent_attribute(
    connection: dj.Connection, schema: str, table: str, column: str
) -> Attribute:
    parent = dj.FreeTable(connection, quote(schema, table))
    try:
        return parent.heading.attributes[column]
    except (dj.errors.DataJointError, KeyError) as error:
        raise SourceError(
            f"The type of attribute {column!r} comes from the parent table"
            f" {quote(schema, table)}, which the link user cannot read: grant it"
            f" SELECT on `{schema}`.* ({error})."
        ) from error


def declared_type_and_comment(attribute: Attribute) -> tuple[str | None, str]:
    """Return the type an attribute was declared with (if recorded) and its comment."""
    comment = str(attribute.comment or "")
    if not attribute.original_type:
        return None, comment
    declared = str(attribute.original_type)
    if declared.startswith("enum"):
        marker = _ENUM_MARKER.match(f":{declared}:{comment}")
        if marker is not None:
            return marker["type"], marker["comment"]
    return declared, comment


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
    declared, _comment = declared_type_and_comment(attribute)
    if declared:
        return declared
    reference = _referenced_column(connection, schema, table, attribute.name)
    if reference is not None:
        parent_schema, parent_table, parent_column = reference
        origin = _parent_attribute(
            connection, parent_schema, parent_table, parent_column
        )
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


@dataclass(frozen=True)
class Column:
    """What the server says of a column that the DataJoint heading drops."""

    default: str | None
    extra: str


def columns_of(connection: dj.Connection, schema: str, table: str) -> dict[str, Column]:
    """Return the raw default and extra of each column of a table."""
    cursor = connection.query(f"SHOW FULL COLUMNS FROM {quote(schema, table)}")
    return {
        row[0]: Column(default=row[5], extra=row[6] or "") for row in cursor.fetchall()
    }


def _sql_string(value: str) -> str:
    # The server reads backslashes in string literals as escapes.
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def default_spec(attribute: Attribute, column: Column | None = None) -> str | None:
    """Return the default to declare an attribute with, in DataJoint notation.

    column holds the server's raw default and extra; without it the heading's
    default is used, which DataJoint has already quoted for string types.
    """
    if attribute.nullable:
        return "null"
    if column is None:
        if attribute.default is None:
            return None
        raw = str(attribute.default)
        if attribute.string and len(raw) > 1 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        column = Column(default=raw, extra="")
    if column.default is None:
        return None
    current = _CURRENT_TIMESTAMP.match(column.default)
    on_update = _ON_UPDATE.search(column.extra)
    if current is not None and _TEMPORAL.match(str(attribute.type)):
        if on_update is not None:
            # DataJoint passes a default through unquoted only when the text
            # before its first parenthesis is CURRENT_TIMESTAMP, so the
            # parentheses are needed even without a precision.
            fsp = current["fsp"] or ""
            return f"CURRENT_TIMESTAMP({fsp}) ON UPDATE CURRENT_TIMESTAMP({fsp})"
        return "CURRENT_TIMESTAMP" + (f"({current['fsp']})" if current["fsp"] else "")
    # Quoted, a value is taken as it is whatever its type; unquoted, a date
    # time's colon would end the default in the definition's grammar.
    literal = _sql_string(column.default)
    if on_update is not None:
        fsp = on_update["fsp"] or ""
        literal += f" ON UPDATE CURRENT_TIMESTAMP({fsp})"
    return literal


def attribute_line(
    connection: dj.Connection,
    schema: str,
    table: str,
    attribute: Attribute,
    stores: Mapping[str, str],
    *,
    column: Column | None = None,
) -> str:
    """Return one definition line that declares the attribute on the destination."""
    type_spec = remap_store(resolve_type(connection, schema, table, attribute), stores)
    if column is None:
        column = columns_of(connection, schema, table).get(attribute.name)
    default = default_spec(attribute, column)
    head = attribute.name if default is None else f"{attribute.name} = {default}"
    _declared, comment = declared_type_and_comment(attribute)
    comment = " ".join(comment.split())
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
    attributes are declared through ``-> master`` instead. Auto-increment is
    dropped, since the values come from the source, and every secondary index
    is kept, including those the source's foreign keys made.
    """
    free_table = dj.FreeTable(connection, quote(schema, table))
    heading = free_table.heading
    columns = columns_of(connection, schema, table)
    comment = (heading.table_status or {}).get("comment", "") or ""
    lines = [f"# {comment}"] if comment else []
    if master_key:
        lines.append("-> master")
    visible = [attr for attr in heading.attributes.values() if not attr.is_hidden]
    primary = [attr for attr in visible if attr.in_key and attr.name not in master_key]
    secondary = [attr for attr in visible if not attr.in_key]

    def line(attr: Attribute) -> str:
        return attribute_line(
            connection, schema, table, attr, stores, column=columns.get(attr.name)
        )

    lines += [line(attr) for attr in primary]
    lines.append("---")
    lines += [line(attr) for attr in secondary]
    for names, index in (heading.indexes or {}).items():
        if set(names) == set(heading.primary_key):
            continue
        kind = "unique index" if index["unique"] else "index"
        lines.append(f"{kind} ({', '.join(names)})")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute of a heading, as much as the source and destination share."""

    name: str
    in_key: bool
    type: str
    nullable: bool
    default: str | None

    def describe(self) -> str:
        """Return the attribute as a definition line would show it."""
        default = "" if self.default is None else f" = {self.default}"
        key = "primary key" if self.in_key else "secondary"
        return f"{self.name}{default} : {self.type} ({key})"


def _normal_type(type_spec: str) -> str:
    """Return a type spelled for comparison: case and spacing do not matter."""
    parts = []
    for token in _TYPE_TOKEN.findall(type_spec):
        if token[0] in "'\"":
            parts.append(token)
        else:
            token = re.sub(r"\s+", " ", token.lower())
            parts.append(re.sub(r"\s*([(),])\s*", r"\1", token))
    return "".join(parts).strip()


def heading_specs(
    connection: dj.Connection,
    schema: str,
    table: str,
    stores: Mapping[str, str] | None = None,
) -> dict[str, AttributeSpec]:
    """Return the attributes of a table as the destination must declare them.

    With stores, stored types are moved to the destination's stores first, so
    that a source heading compares with its destination heading.
    """
    heading = dj.FreeTable(connection, quote(schema, table)).heading
    columns = columns_of(connection, schema, table)
    specs = {}
    for attr in heading.attributes.values():
        type_spec = resolve_type(connection, schema, table, attr)
        if stores is not None:
            type_spec = remap_store(type_spec, stores)
        specs[attr.name] = AttributeSpec(
            name=attr.name,
            in_key=bool(attr.in_key),
            type=_normal_type(type_spec),
            nullable=bool(attr.nullable),
            default=default_spec(attr, columns.get(attr.name)),
        )
    return specs


def heading_differences(
    expected: Mapping[str, AttributeSpec], actual: Mapping[str, AttributeSpec]
) -> list[str]:
    """Return how the actual heading differs from the expected, one line each."""
    differences = []
    for name, want in expected.items():
        got = actual.get(name)
        if got is None:
            differences.append(f"{name}: missing (source has {want.describe()})")
        elif got != want:
            differences.append(
                f"{name}: destination has {got.describe()},"
                f" source implies {want.describe()}"
            )
    differences += [
        f"{name}: not in the source ({got.describe()})"
        for name, got in actual.items()
        if name not in expected
    ]
    return differences


def _existing_tables(connection: dj.Connection, schema: str) -> set[str]:
    rows = connection.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        args=(schema,),
    ).fetchall()
    return {row[0] for row in rows}


def _destination_names(class_name: str, source_tables: SourceTables) -> dict[str, str]:
    """Return the destination table name of the master and of each part."""
    master = from_camel_case(class_name)
    names = {source_tables.master: master}
    for part in _direct_parts(source_tables):
        suffix = _part_suffix(source_tables, part)
        if from_camel_case(class_name_of(suffix)) != suffix:
            raise SourceError(
                f"The source part table {part!r} has a name that DataJoint cannot"
                " give a part class, so it cannot be declared on the destination."
            )
        names[part] = f"{master}__{suffix}"
    return names


def check_destination_heading(
    destination: dj.Connection,
    source: dj.Connection,
    destination_schema: str,
    class_name: str,
    source_tables: SourceTables,
    stores: Mapping[str, str],
) -> None:
    """Raise DestinationError if existing destination tables differ from the source.

    Compares every destination table that exists already (the master and each
    part) attribute by attribute with what the source implies: names, primary
    key, DataJoint type, nullability and default. The order of attributes,
    comments, indexes and foreign keys are not compared. Writes nothing.
    """
    existing = _existing_tables(destination, destination_schema)
    problems = []
    for source_table, name in _destination_names(class_name, source_tables).items():
        if name not in existing:
            continue
        expected = heading_specs(source, source_tables.schema, source_table, stores)
        actual = heading_specs(destination, destination_schema, name)
        differences = heading_differences(expected, actual)
        if differences:
            problems.append(
                f"{quote(destination_schema, name)} differs from its source"
                f" {quote(source_tables.schema, source_table)}: "
                + "; ".join(differences)
            )
    if problems:
        raise DestinationError(
            "The destination table already exists with another heading, so the"
            " link cannot copy into it; nothing was changed. "
            + " ".join(problems)
            + ". Drop or fix the destination table, or link into another schema."
        )


def _current_user(connection: dj.Connection) -> str:
    current = str(connection.query("SELECT CURRENT_USER()").fetchone()[0])
    user, _, host = current.rpartition("@")
    return f"'{user}'@'{host}'" if host else f"'{user}'"


def _denied(error: BaseException) -> BaseException | None:
    """Return the server's access-denied error behind error, if there is one."""
    found: BaseException | None = None
    cause: BaseException | None = error
    while cause is not None:
        args = getattr(cause, "args", ())
        if args and args[0] in _DENIED:
            return cause  # the server's own words: which command, which table
        if found is None and isinstance(cause, AccessError):
            found = cause
        cause = cause.__cause__ or cause.__context__
    return found


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
    try:
        schema = source.Schema(helper_schema, context={"SourceTable": source_table})
        helper: type[Any] = type(
            helper_class,
            (dj.Manual,),
            {"definition": HELPER_DEFINITION.format(source="SourceTable")},
        )
        declared = schema(helper)
    except dj.errors.DataJointError as error:
        denied = _denied(error)
        if denied is None:
            raise
        user = _current_user(source.connection)
        reason = str(denied.args[-1]) if denied.args else str(denied)
        if reason.upper().startswith("REFERENCES"):
            grant = f"GRANT SELECT, REFERENCES ON `{source_tables.schema}`.* TO {user}"
        else:
            grant = f"GRANT ALL PRIVILEGES ON `{helper_schema}`.* TO {user}"
        raise SourceError(
            f"The link user {user} may not declare the helper table in schema"
            f" {helper_schema!r} on the source server ({reason}); the source lab"
            f" must run: {grant};"
        ) from error
    logger.info("declared helper table %s", declared.full_table_name)
    return dj.FreeTable(source.connection, declared.full_table_name)


@dataclass(frozen=True)
class DestinationPlan:
    """The destination's definitions, derived and checked before anything is written."""

    schema: str
    class_name: str
    master: str
    parts: Mapping[str, str]
    """The definition of each part, by part class name."""


def plan_destination(
    destination: dj.Connection,
    source: dj.Connection,
    destination_schema: str,
    class_name: str,
    source_tables: SourceTables,
    stores: Mapping[str, str],
) -> DestinationPlan:
    """Return the destination's definitions, reading both servers and writing nothing.

    Raises SourceError when the source cannot be declared from (a parent the
    link user may not read, a store the link does not map) and DestinationError
    when destination tables exist with another heading. Calling it before the
    helper table is declared keeps both servers unchanged on such errors.
    """
    schema_name = source_tables.schema
    _destination_names(class_name, source_tables)
    master = destination_definition(source, schema_name, source_tables.master, stores)
    master_key = tuple(
        dj.FreeTable(source, quote(schema_name, source_tables.master)).primary_key
    )
    parts = {
        class_name_of(_part_suffix(source_tables, part)): destination_definition(
            source, schema_name, part, stores, master_key=master_key
        )
        for part in _direct_parts(source_tables)
    }
    check_destination_heading(
        destination, source, destination_schema, class_name, source_tables, stores
    )
    return DestinationPlan(
        schema=destination_schema, class_name=class_name, master=master, parts=parts
    )


def declare_destination(
    destination: dj.Instance,
    source: dj.Connection,
    destination_schema: str,
    class_name: str,
    source_tables: SourceTables,
    stores: Mapping[str, str],
    bases: tuple[type, ...],
    namespace: Mapping[str, Any],
    *,
    plan: DestinationPlan | None = None,
    part_bases: tuple[type, ...] = (),
) -> type[Any]:
    """Declare the destination table and its parts, if missing, and return its class.

    The class is a Manual table whatever the source's tier: the destination
    rows are written by the link alone, never populated. Without a plan from
    plan_destination, one is made here, so existing tables are always checked
    against the source before anything is declared.
    """
    if plan is None:
        plan = plan_destination(
            destination.connection,
            source,
            destination_schema,
            class_name,
            source_tables,
            stores,
        )
    parts = {
        name: type(name, (*part_bases, dj.Part), {"definition": definition})
        for name, definition in plan.parts.items()
    }
    attributes = {**namespace, "definition": plan.master, **parts}
    table_class: type[Any] = type(plan.class_name, (*bases, dj.Manual), attributes)
    schema = destination.Schema(plan.schema)
    return schema(table_class)  # type: ignore[no-any-return]
