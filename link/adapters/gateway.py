"""Contains the link's reads and writes of its three tables, in raw SQL.

DataJoint is used to learn each table's heading; rows themselves move as raw
SQL, in batches: a DataJoint insert re-encodes every value (see the design
notes: about six times slower), while the raw column values of source and
destination are the same encoding. Every write is guarded by the state it
expects, so that a repeated message changes nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import datajoint as dj
import pymysql

from link.adapters.literals import (
    STATEMENT_BYTES,
    RowRendering,
    column_types,
    insert_statements,
    key_literal,
    keys_in,
    plan_rendering,
    row_literals,
    unbundle,
)
from link.adapters.objects import StoredObjects, split_full_name
from link.adapters.servers import in_link_session, read_in_link_session
from link.adapters.tables import quote
from link.domain.events import LinkRef
from link.domain.keys import CanonicalKey, KeyAttribute, KeyCodec, kind_of_sql_type
from link.domain.lifecycle import HelperRow, Observation, Process
from link.errors import DestinationError, RowsAlreadyCopiedError, SourceError

logger = logging.getLogger(__name__)

QUERY_CHUNK = 1_000
"""Keys per SQL statement: keeps statements far below max_allowed_packet."""

_DUPLICATE_ENTRY = 1062


def chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Yield consecutive slices of at most size items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _columns(table: dj.FreeTable) -> tuple[str, ...]:
    return tuple(
        name for name, attr in table.heading.attributes.items() if not attr.is_hidden
    )


def _stored(table: dj.FreeTable) -> list[str]:
    return [
        name
        for name, attr in table.heading.attributes.items()
        if attr.is_hash_object or attr.is_schema_object or attr.store is not None
    ]


@dataclass(frozen=True)
class PartPair:
    """A source part table and the destination part table it is copied to."""

    source: str
    destination: str


@dataclass(frozen=True)
class TableReading:
    """How the copy reads one source table: rendered by the server, or raw.

    The raw reading serves rows too large for the source server to write as
    text (longer than its max_allowed_packet). A table whose columns are all
    rendered also has a bundled reading: its rows' texts joined by the server
    into one text per query (see LinkGateway._bundled_literals).
    """

    rendered: RowRendering
    rendered_select: str
    raw: RowRendering
    raw_select: str
    bundled_select: str | None


class _NotAllUnsharedError(Exception):
    """Rolls back an all-or-nothing activation that found a row not Unshared."""


class LinkGateway:
    """Reads and writes the source, helper and destination tables of one link."""

    def __init__(self, link: LinkRef, source: dj.Instance, destination: dj.Instance):
        """Learn the headings of the link's tables."""
        self.link = link
        self._source_connection = source.connection
        self._destination_connection = destination.connection
        self.source_table = quote(link.source_schema, link.source_table)
        self.helper_table = quote(link.helper_schema, link.helper_table)
        self.destination_table = quote(link.destination_schema, link.destination_table)
        self._tables: dict[str, dj.FreeTable] = {}
        try:
            heading = self._table(self.source_table).heading
            heading.attributes  # noqa: B018 - loads the heading, raising if absent
        except dj.errors.DataJointError as error:
            raise SourceError(
                f"The source table {self.source_table} of link {link.link_id}"
                f" cannot be read: {error}"
            ) from error
        self.codec = KeyCodec(
            tuple(
                KeyAttribute(name, kind_of_sql_type(attr.type, is_uuid=attr.uuid))
                for name, attr in heading.attributes.items()
                if attr.in_key
            )
        )
        self.parts = tuple(self._part_pairs())
        # One batch's key condition serves several statements in a row.
        self._build_condition = functools.lru_cache(maxsize=8)(  # type: ignore[method-assign]
            self._build_condition
        )
        self._readings = {
            table: self._reading(table)
            for table in (self.source_table, *(pair.source for pair in self.parts))
        }
        (packet,) = self._destination.query("SELECT @@max_allowed_packet").fetchone()
        # Characters, not bytes: escaped non-ASCII text may take up to 4 bytes.
        self._statement_limit = min(STATEMENT_BYTES, int(packet) // 4)
        self._objects: StoredObjects | None = None
        if any(_stored(table) for table in self._tables.values()):
            # Rows carry only the metadata of stored objects: their bytes are
            # copied store to store, and every store is checked before a write.
            self._objects = StoredObjects(source, destination, link.stores)
            self._objects.check(
                [(self._tables[self.source_table], self.destination_table)]
                + [(self._tables[pair.source], pair.destination) for pair in self.parts]
            )

    @property
    def _source(self) -> dj.Connection:
        """The source connection, its session in UTC (see servers.in_link_session)."""
        return in_link_session(self._source_connection)

    @property
    def _destination(self) -> dj.Connection:
        """The destination connection, its session in UTC."""
        return in_link_session(self._destination_connection)

    def _table(self, full_name: str) -> dj.FreeTable:
        """Return a source table, its heading read once for the gateway's life."""
        table = self._tables.get(full_name)
        if table is None:
            table = self._tables[full_name] = dj.FreeTable(self._source, full_name)
        return table

    def _part_pairs(self) -> Iterator[PartPair]:
        rows = self._source.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            args=(self.link.source_schema,),
        ).fetchall()
        # Compared in Python: in LIKE, the '_' of a tier prefix is a wildcard.
        prefix = self.link.source_table + "__"
        for (name,) in sorted(rows):
            if not name.startswith(prefix):
                continue
            suffix = name[len(self.link.source_table) + 2 :]
            if "__" in suffix:
                continue
            source = quote(self.link.source_schema, name)
            destination = quote(
                self.link.destination_schema, f"{self.link.destination_table}__{suffix}"
            )
            yield PartPair(source=source, destination=destination)

    def _reading(self, full_name: str) -> TableReading:
        table = self._table(full_name)
        types = column_types(self._source, *split_full_name(full_name))
        columns = _columns(table)
        # Stored-object metadata passes through Python: the link rewrites it.
        rendered = plan_rendering(full_name, columns, types, set(_stored(table)))
        raw = plan_rendering(full_name, columns, types, set(columns))
        rendered_select = rendered.select_list(types)
        return TableReading(
            rendered=rendered,
            rendered_select=rendered_select,
            raw=raw,
            raw_select=raw.select_list(types),
            bundled_select=rendered.bundled_select_list(types),
        )

    # -- key conditions ---------------------------------------------------------

    def _condition(self, keys: Sequence[CanonicalKey]) -> str:
        return self._build_condition(tuple(keys))

    def _build_condition(self, keys: tuple[CanonicalKey, ...]) -> str:
        return keys_in(self.codec.names, map(self.codec.canonical_to_sql, keys))

    def _select_keys(
        self, connection: dj.Connection, table: str, keys: Sequence[CanonicalKey]
    ) -> set[CanonicalKey]:
        found: set[CanonicalKey] = set()
        names = ", ".join(f"`{name}`" for name in self.codec.names)
        for chunk in chunked(keys, QUERY_CHUNK):
            condition = self._condition(chunk)
            rows = read_in_link_session(
                connection, f"SELECT {names} FROM {table} WHERE {condition}"
            ).fetchall()
            found.update(self.codec.canonical_from_sql(row) for row in rows)
        return found

    # -- reads --------------------------------------------------------------------

    def read_helper(
        self, keys: Sequence[CanonicalKey]
    ) -> dict[CanonicalKey, HelperRow]:
        """Return the helper rows of the keys that have one."""
        names = ", ".join(f"`{name}`" for name in self.codec.names)
        width = len(self.codec.names)
        helpers: dict[CanonicalKey, HelperRow] = {}
        for chunk in chunked(keys, QUERY_CHUNK):
            condition = self._condition(chunk)
            rows = read_in_link_session(
                self._source_connection,
                f"SELECT {names}, process, is_flagged, is_deprecated"
                f" FROM {self.helper_table} WHERE {condition}",
            ).fetchall()
            for row in rows:
                key = self.codec.canonical_from_sql(row[:width])
                process, flagged, deprecated = row[width:]
                helpers[key] = HelperRow(
                    process=Process(process),
                    is_flagged=flagged == "TRUE",
                    is_deprecated=deprecated == "TRUE",
                )
        return helpers

    def all_pulling(self, keys: Sequence[CanonicalKey]) -> bool:
        """Return whether every row's helper row is unflagged and in process PULL.

        Counted by the server: the usual transfer batch needs only this yes or
        no, not its rows' helper rows.
        """
        found = 0
        for chunk in chunked(keys, QUERY_CHUNK):
            (count,) = read_in_link_session(
                self._source_connection,
                f"SELECT COUNT(*) FROM {self.helper_table}"
                f" WHERE {self._condition(chunk)} AND process = 'PULL'"
                " AND is_flagged = 'FALSE' AND is_deprecated = 'FALSE'",
            ).fetchone()
            found += int(count)
        return found == len(set(keys))

    def observe(
        self, keys: Sequence[CanonicalKey], *, helper_implies_source: bool = False
    ) -> dict[CanonicalKey, Observation]:
        """Return where each row is present: source, helper and destination.

        With helper_implies_source, every row is taken to be in the source
        without asking, which saves the transfer step a query: the rows it
        handles have helper rows, whose foreign key to the source table keeps
        them there, and a row without one is not being pulled either way.
        """
        helpers = self.read_helper(keys)
        if helper_implies_source:
            in_source = set(keys)
        else:
            in_source = self._select_keys(self._source, self.source_table, keys)
        in_destination = self._select_keys(
            self._destination, self.destination_table, keys
        )
        return {
            key: Observation(
                in_source=key in in_source,
                helper=helpers.get(key),
                in_destination=key in in_destination,
            )
            for key in keys
        }

    def unfinished(self, limit: int) -> dict[Process, list[CanonicalKey]]:
        """Return up to limit rows whose helper row is in PULL or DELETE."""
        names = ", ".join(f"`{name}`" for name in self.codec.names)
        rows = read_in_link_session(
            self._source_connection,
            f"SELECT {names}, process FROM {self.helper_table}"
            " WHERE process IN ('PULL', 'DELETE') LIMIT %s",
            args=(limit,),
        ).fetchall()
        found: dict[Process, list[CanonicalKey]] = {
            Process.PULL: [],
            Process.DELETE: [],
        }
        width = len(self.codec.names)
        for row in rows:
            found[Process(row[width])].append(
                self.codec.canonical_from_sql(row[:width])
            )
        return found

    # -- helper writes (source server) --------------------------------------------

    def _update_helper(
        self, keys: Sequence[CanonicalKey], assignment: str, guard: str
    ) -> int:
        changed = 0
        for chunk in chunked(keys, QUERY_CHUNK):
            condition = self._condition(chunk)
            cursor = self._source.query(
                f"UPDATE {self.helper_table} SET {assignment}"
                f" WHERE {condition} AND {guard}"
            )
            changed += cursor.rowcount
        return changed

    def activate(self, keys: Sequence[CanonicalKey]) -> int:
        """Insert helper rows with process PULL (Unshared to Activated).

        A row that another request activated meanwhile keeps its helper row as
        it is: its pull simply continues.
        """
        if not keys:
            return 0
        names = ", ".join(f"`{name}`" for name in self.codec.names)
        with self._source.transaction:
            for chunk in chunked(keys, QUERY_CHUNK):
                rows = ",".join(
                    "("
                    + ", ".join(map(key_literal, self.codec.canonical_to_sql(key)))
                    + f", '{Process.PULL.value}')"
                    for key in chunk
                )
                self._source.query(
                    f"INSERT INTO {self.helper_table} ({names}, process)"
                    f" VALUES {rows} ON DUPLICATE KEY UPDATE process = process"
                )
        return len(keys)

    def activate_unshared(self, keys: Sequence[CanonicalKey]) -> bool:
        """Activate the rows in one go if every one of them is Unshared.

        Unshared here means in the source, without a helper row and not in
        the destination. The helper rows are inserted from the source rows
        themselves, in one transaction: a key missing from the source inserts
        nothing and an existing helper row fails the insert, and either way
        nothing is kept and False is returned.
        """
        if not keys:
            return True
        if self._select_keys(self._destination, self.destination_table, keys):
            return False
        names = ", ".join(f"`{name}`" for name in self.codec.names)
        try:
            with self._source.transaction:
                cursor = self._source._conn.cursor()
                inserted = 0
                for chunk in chunked(keys, QUERY_CHUNK):
                    inserted += cursor.execute(
                        f"INSERT INTO {self.helper_table} ({names}, process)"
                        f" SELECT {names}, '{Process.PULL.value}'"
                        f" FROM {self.source_table} WHERE {self._condition(chunk)}"
                    )
                if inserted != len(keys):
                    raise _NotAllUnsharedError
        except _NotAllUnsharedError:
            return False
        except pymysql.err.IntegrityError as error:
            if error.args and error.args[0] == _DUPLICATE_ENTRY:
                return False
            raise
        return True

    def reactivate(self, keys: Sequence[CanonicalKey]) -> int:
        """Replace the helper rows of deprecated rows that the source unflagged."""
        return self._update_helper(
            keys,
            "process = 'PULL', is_deprecated = 'FALSE'",
            "process = 'NONE' AND is_flagged = 'FALSE' AND is_deprecated = 'TRUE'",
        )

    def finish(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Set process NONE on received rows (Received to Shared or Tainted).

        Returns how many became Shared and how many Tainted: one statement for
        each, so that the flags need not be read back.
        """
        shared = self._update_helper(
            keys, "process = 'NONE'", "process = 'PULL' AND is_flagged = 'FALSE'"
        )
        if shared == len(keys):
            return shared, 0
        tainted = self._update_helper(
            keys, "process = 'NONE'", "process = 'PULL' AND is_flagged = 'TRUE'"
        )
        return shared, tainted

    def deprecate(self, keys: Sequence[CanonicalKey]) -> int:
        """Mark flagged rows out of the destination as deprecated (to Deprecated)."""
        return self._update_helper(
            keys,
            "process = 'NONE', is_deprecated = 'TRUE'",
            "process IN ('PULL', 'DELETE') AND is_flagged = 'TRUE'",
        )

    def mark_deleting(self, keys: Sequence[CanonicalKey]) -> int:
        """Set process DELETE on shared rows (Shared or Tainted to Received)."""
        return self._update_helper(
            keys, "process = 'DELETE'", "process = 'NONE' AND is_deprecated = 'FALSE'"
        )

    def remove_helper(self, keys: Sequence[CanonicalKey]) -> int:
        """Delete the helper rows of unflagged deleted rows (Activated to Unshared)."""
        removed = 0
        for chunk in chunked(keys, QUERY_CHUNK):
            condition = self._condition(chunk)
            cursor = self._source.query(
                f"DELETE FROM {self.helper_table} WHERE {condition}"
                " AND process = 'DELETE' AND is_flagged = 'FALSE'"
            )
            removed += cursor.rowcount
        return removed

    # -- destination writes ---------------------------------------------------------

    def _fetch(
        self, select: str, table: str, keys: Sequence[CanonicalKey]
    ) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for chunk in chunked(keys, QUERY_CHUNK):
            condition = self._condition(chunk)
            rows.extend(
                read_in_link_session(
                    self._source_connection,
                    f"SELECT {select} FROM {table} WHERE {condition}",
                ).fetchall()
            )
        return rows

    def _bundled_literals(
        self, select: str, table: str, keys: Sequence[CanonicalKey]
    ) -> list[str] | None:
        """Return the rendered rows of the keys, read as one text per query.

        PyMySQL parses every result row in Python, at a cost that a row's few
        columns do not repay: the source server joins the rows' texts with
        GROUP_CONCAT instead, and one row comes back. The count tells whether
        every row is in the text. GROUP_CONCAT leaves out a row too large to
        render (NULL) and cuts a text longer than group_concat_max_len; for
        either, None is returned and the rows are read one by one.
        """
        literals: list[str] = []
        for total, text in self._fetch(select, table, keys):
            if not total:
                continue
            rows = unbundle(text)
            if len(rows) != total:
                return None
            literals.extend(rows)
        return literals

    def _literals(
        self, source: str, destination: str, keys: Sequence[CanonicalKey]
    ) -> tuple[RowRendering, list[str]]:
        """Return the rows of the keys in a source table as SQL row constructors.

        Also returns the rendering used, which orders the destination columns.
        """
        reading = self._readings[source]
        rendering = reading.rendered
        if reading.bundled_select is not None:
            bundled = self._bundled_literals(reading.bundled_select, source, keys)
            if bundled is not None:
                return rendering, bundled
        rows = self._fetch(reading.rendered_select, source, keys)
        if rendering.rendered and any(row[0] is None for row in rows):
            # The server gives NULL for a text longer than its
            # max_allowed_packet: such rows are read raw and escaped here.
            logger.warning(
                "link %s: rows of %s are too large for the source server to write"
                " as SQL text (max_allowed_packet); reading them raw",
                self.link.link_id,
                source,
            )
            rendering = reading.raw
            rows = self._fetch(reading.raw_select, source, keys)
        if self._objects is not None and rendering.passed:
            # Objects are copied before their rows: a failed insert leaves
            # copies that the destination's garbage collector removes.
            offset = 1 if rendering.rendered else 0
            passed = self._objects.rewrite(
                self._tables[source],
                destination,
                rendering.passed,
                [row[offset:] for row in rows],
            )
            rows = [
                row[:offset] + values for row, values in zip(rows, passed, strict=True)
            ]
        return rendering, row_literals(rows, rendering, self._destination._conn.escape)

    def copy(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Copy rows and their part rows to the destination in one transaction.

        Returns the number of rows and of part rows written. Either all of them
        arrive or, on any error, none does.
        """
        if not keys:
            return 0, 0
        batches = [
            (destination, *self._literals(source, destination, keys))
            for source, destination in (
                (self.source_table, self.destination_table),
                *((pair.source, pair.destination) for pair in self.parts),
            )
        ]
        with self._destination.transaction:
            cursor = self._destination._conn.cursor()
            for table, rendering, literals in batches:
                statements = insert_statements(
                    table, rendering.insert_columns, literals, self._statement_limit
                )
                try:
                    for statement in statements:
                        cursor.execute(statement)
                except pymysql.err.IntegrityError as error:
                    if error.args and error.args[0] == _DUPLICATE_ENTRY:
                        raise RowsAlreadyCopiedError(
                            f"Link {self.link.link_id}: some rows of the batch are"
                            f" already in {table}; nothing of this batch was kept."
                        ) from error
                    raise DestinationError(
                        f"Link {self.link.link_id}: writing {len(literals)} row(s) to"
                        f" {table} failed, nothing of this batch was kept: {error}"
                    ) from error
                except pymysql.err.MySQLError as error:
                    raise DestinationError(
                        f"Link {self.link.link_id}: writing {len(literals)} row(s) to"
                        f" {table} failed, nothing of this batch was kept: {error}"
                    ) from error
        part_rows = sum(len(literals) for _table, _rendering, literals in batches[1:])
        return len(batches[0][2]), part_rows

    def remove_from_destination(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Delete rows and their part rows from the destination in one transaction.

        Returns the number of rows and of part rows deleted.
        """
        if not keys:
            return 0, 0
        rows = part_rows = 0
        with self._destination.transaction:
            cursor = self._destination._conn.cursor()
            for chunk in chunked(keys, QUERY_CHUNK):
                condition = self._condition(chunk)
                # Parts first: they reference the master on the destination.
                for pair in self.parts:
                    part_rows += cursor.execute(
                        f"DELETE FROM {pair.destination} WHERE {condition}"
                    )
                rows += cursor.execute(
                    f"DELETE FROM {self.destination_table} WHERE {condition}"
                )
        return rows, part_rows
