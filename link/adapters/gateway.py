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

from link.adapters.objects import StoredObjects
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


def _select_list(table: dj.FreeTable, columns: Sequence[str]) -> str:
    """Return a select list that reads the columns' stored values exactly."""
    attributes = table.heading.attributes
    # MariaDB sends FLOAT values rounded to six significant digits, which the
    # copy would store back rounded; read as DOUBLE they arrive exactly.
    return ", ".join(
        f"CAST(`{name}` AS DOUBLE)"
        if str(attributes[name].type).lower().startswith("float")
        else f"`{name}`"
        for name in columns
    )


@dataclass(frozen=True)
class PartPair:
    """A source part table and the destination part table it is copied to."""

    source: str
    destination: str
    columns: tuple[str, ...]


class LinkGateway:
    """Reads and writes the source, helper and destination tables of one link."""

    def __init__(self, link: LinkRef, source: dj.Instance, destination: dj.Instance):
        """Learn the headings of the link's tables."""
        self.link = link
        self._source = source.connection
        self._destination = destination.connection
        self.source_table = quote(link.source_schema, link.source_table)
        self.helper_table = quote(link.helper_schema, link.helper_table)
        self.destination_table = quote(link.destination_schema, link.destination_table)
        try:
            master = dj.FreeTable(self._source, self.source_table)
            heading = master.heading
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
        self.columns = _columns(master)
        self.parts = tuple(self._part_pairs())
        # One batch's key condition serves several statements in a row.
        self._build_condition = functools.lru_cache(maxsize=8)(  # type: ignore[method-assign]
            self._build_condition
        )
        self._selects = {
            table: _select_list(dj.FreeTable(self._source, table), columns)
            for table, columns in (
                (self.source_table, self.columns),
                *((pair.source, pair.columns) for pair in self.parts),
            )
        }
        self._tables = {
            table: dj.FreeTable(self._source, table)
            for table in (self.source_table, *(pair.source for pair in self.parts))
        }
        self._objects: StoredObjects | None = None
        if any(_stored(table) for table in self._tables.values()):
            # Rows carry only the metadata of stored objects: their bytes are
            # copied store to store, and every store is checked before a write.
            self._objects = StoredObjects(source, destination, link.stores)
            self._objects.check(
                [(self._tables[self.source_table], self.destination_table)]
                + [(self._tables[pair.source], pair.destination) for pair in self.parts]
            )

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
            columns = _columns(dj.FreeTable(self._source, source))
            yield PartPair(source=source, destination=destination, columns=columns)

    # -- key conditions ---------------------------------------------------------

    def _condition(self, keys: Sequence[CanonicalKey]) -> tuple[str, tuple[Any, ...]]:
        return self._build_condition(tuple(keys))

    def _build_condition(
        self, keys: tuple[CanonicalKey, ...]
    ) -> tuple[str, tuple[Any, ...]]:
        names = ", ".join(f"`{name}`" for name in self.codec.names)
        row = "(" + ", ".join(["%s"] * len(self.codec.names)) + ")"
        args: list[Any] = []
        for key in keys:
            args.extend(self.codec.to_sql(self.codec.to_message(key)))
        return f"({names}) IN ({', '.join([row] * len(keys))})", tuple(args)

    def _select_keys(
        self, connection: dj.Connection, table: str, keys: Sequence[CanonicalKey]
    ) -> set[CanonicalKey]:
        found: set[CanonicalKey] = set()
        names = ", ".join(f"`{name}`" for name in self.codec.names)
        for chunk in chunked(keys, QUERY_CHUNK):
            condition, args = self._condition(chunk)
            rows = connection.query(
                f"SELECT {names} FROM {table} WHERE {condition}", args=args
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
            condition, args = self._condition(chunk)
            rows = self._source.query(
                f"SELECT {names}, process, is_flagged, is_deprecated"
                f" FROM {self.helper_table} WHERE {condition}",
                args=args,
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
        rows = self._source.query(
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
            condition, args = self._condition(chunk)
            cursor = self._source.query(
                f"UPDATE {self.helper_table} SET {assignment}"
                f" WHERE {condition} AND {guard}",
                args=args,
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
        placeholders = ", ".join(["%s"] * (len(self.codec.names) + 1))
        sql = (
            f"INSERT INTO {self.helper_table} ({names}, process)"
            f" VALUES ({placeholders}) ON DUPLICATE KEY UPDATE process = process"
        )
        rows = [
            (*self.codec.to_sql(self.codec.to_message(key)), Process.PULL.value)
            for key in keys
        ]
        with self._source.transaction:
            cursor = self._source._conn.cursor()
            for chunk in chunked(rows, QUERY_CHUNK):
                cursor.executemany(sql, chunk)
        return len(rows)

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
            condition, args = self._condition(chunk)
            cursor = self._source.query(
                f"DELETE FROM {self.helper_table} WHERE {condition}"
                " AND process = 'DELETE' AND is_flagged = 'FALSE'",
                args=args,
            )
            removed += cursor.rowcount
        return removed

    # -- destination writes ---------------------------------------------------------

    def _fetch(
        self, table: str, columns: Sequence[str], keys: Sequence[CanonicalKey]
    ) -> list[tuple[Any, ...]]:
        select = self._selects[table]
        rows: list[tuple[Any, ...]] = []
        for chunk in chunked(keys, QUERY_CHUNK):
            condition, args = self._condition(chunk)
            rows.extend(
                self._source.query(
                    f"SELECT {select} FROM {table} WHERE {condition}", args=args
                ).fetchall()
            )
        return rows

    def copy(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Copy rows and their part rows to the destination in one transaction.

        Returns the number of rows and of part rows written. Either all of them
        arrive or, on any error, none does.
        """
        if not keys:
            return 0, 0
        batches: list[tuple[str, Sequence[str], list[tuple[Any, ...]]]] = []
        for source, destination, selected in (
            (self.source_table, self.destination_table, self.columns),
            *((pair.source, pair.destination, pair.columns) for pair in self.parts),
        ):
            rows = self._fetch(source, selected, keys)
            if self._objects is not None:
                # Objects are copied before their rows: a failed insert leaves
                # copies that the destination's garbage collector removes.
                rows = self._objects.rewrite(
                    self._tables[source], destination, selected, rows
                )
            batches.append((destination, selected, rows))
        with self._destination.transaction:
            cursor = self._destination._conn.cursor()
            for table, columns, rows in batches:
                if not rows:
                    continue
                names = ", ".join(f"`{name}`" for name in columns)
                placeholders = ", ".join(["%s"] * len(columns))
                try:
                    cursor.executemany(
                        f"INSERT INTO {table} ({names}) VALUES ({placeholders})", rows
                    )
                except pymysql.err.IntegrityError as error:
                    if error.args and error.args[0] == _DUPLICATE_ENTRY:
                        raise RowsAlreadyCopiedError(
                            f"Link {self.link.link_id}: some rows of the batch are"
                            f" already in {table}; nothing of this batch was kept."
                        ) from error
                    raise DestinationError(
                        f"Link {self.link.link_id}: writing {len(rows)} row(s) to"
                        f" {table} failed, nothing of this batch was kept: {error}"
                    ) from error
                except pymysql.err.MySQLError as error:
                    raise DestinationError(
                        f"Link {self.link.link_id}: writing {len(rows)} row(s) to"
                        f" {table} failed, nothing of this batch was kept: {error}"
                    ) from error
        part_rows = sum(len(rows) for _table, _columns, rows in batches[1:])
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
                condition, args = self._condition(chunk)
                # Parts first: they reference the master on the destination.
                for pair in self.parts:
                    part_rows += cursor.execute(
                        f"DELETE FROM {pair.destination} WHERE {condition}", args
                    )
                rows += cursor.execute(
                    f"DELETE FROM {self.destination_table} WHERE {condition}", args
                )
        return rows, part_rows
