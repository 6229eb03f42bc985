"""Contains the user's side of a benchmarked system, run as its own process.

``python -m bench.client SYSTEM`` reads one JSON command per line on standard
input and answers each with one JSON line: how long the operation took and the
process's peak resident memory during it. SYSTEM is ``link`` (this project,
embedded or over Kafka as LINK_BROKER says) or ``raw`` (the raw bulk copy).
The older tool answers the same commands from ``bench/old_tool.py``.

Commands: ``link`` (declare the destination), ``pull`` (every source row),
``pull_one`` (one row by key), ``delete_flagged`` (delete the rows the source
flagged) and ``quit``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any, Protocol, TextIO

import pymysql
import pymysql.cursors

from bench.memory import peak_rss, reset_peak_rss
from bench.settings import Connection, Servers
from bench.shape import (
    CLASS_NAME,
    HELPER_CLASS,
    MASTER,
    MASTER_DDL,
    PART,
    PART_DDL,
)

COPY_CHUNK = 1000
"""Rows per multi-row INSERT of the raw copy (PyMySQL also caps it at ~1 MB)."""


class System(Protocol):
    """One benchmarked system, as its user drives it."""

    def link(self, command: dict[str, Any]) -> dict[str, Any]:
        """Declare (or find) the destination tables of the link."""

    def pull(self) -> dict[str, Any]:
        """Pull every row of the source table."""

    def pull_one(self, key: dict[str, Any]) -> dict[str, Any]:
        """Pull one row."""

    def delete_flagged(self) -> dict[str, Any]:
        """Delete the rows the source flagged from the destination."""


class LinkSystem:
    """This project's link decorator, embedded or over Kafka."""

    def __init__(self) -> None:
        """Nothing is linked before the link command."""
        self._table: Any = None

    def link(self, command: dict[str, Any]) -> dict[str, Any]:
        """Decorate a class named after the source table."""
        from link import link

        servers = Servers.from_document(command["servers"])
        decorate = link(
            servers.source_host,
            command["source_schema"],
            command["helper_schema"],
            HELPER_CLASS,
            command["destination_schema"],
        )
        self._table = decorate(type(CLASS_NAME, (), {"__doc__": "Benchmark rows."}))
        return {}

    def pull(self) -> dict[str, Any]:
        """Pull the whole source table."""
        result = self._table().source.pull()
        return {"counts": result.counts.model_dump(), "requested": result.requested}

    def pull_one(self, key: dict[str, Any]) -> dict[str, Any]:
        """Pull the source row with this key."""
        result = (self._table().source & key).pull()
        return {"counts": result.counts.model_dump()}

    def delete_flagged(self) -> dict[str, Any]:
        """Delete the flagged rows, as the README shows for scripts."""
        table = self._table()
        # Standard input carries the benchmark's commands: a confirmation
        # prompt would read the next command as its answer.
        deleted = (table & table.source.flagged).delete(prompt=False)
        return {"deleted": deleted}


class RawSystem:
    """The practical limit: a bulk copy that knows the table, no lifecycle."""

    def __init__(self) -> None:
        """Nothing is connected before the link command."""
        self._source: Connection = None
        self._destination: Connection = None
        self._source_schema = ""
        self._destination_schema = ""

    def link(self, command: dict[str, Any]) -> dict[str, Any]:
        """Connect and create the destination tables."""
        servers = Servers.from_document(command["servers"])
        self._source_schema = command["source_schema"]
        self._destination_schema = command["destination_schema"]
        self._source = servers.source_link()
        self._destination = servers.destination()
        cursor = self._destination.cursor()
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{self._destination_schema}`")
        cursor.execute(MASTER_DDL.format(schema=self._destination_schema))
        cursor.execute(PART_DDL.format(schema=self._destination_schema))
        return {}

    def _select_list(self, table: str) -> str:
        """Return what the copy selects from a source table."""
        return "*"

    def _write(
        self, cursor: Any, table: str, rows: tuple[tuple[Any, ...], ...]
    ) -> None:
        """Insert one chunk of selected rows into the destination table."""
        placeholders = ", ".join(["%s"] * len(rows[0]))
        cursor.executemany(
            f"INSERT INTO `{self._destination_schema}`.`{table}`"
            f" VALUES ({placeholders})",
            rows,
        )

    def _copy(self, table: str, where: str = "", args: tuple[Any, ...] = ()) -> int:
        select = self._select_list(table)
        source = self._source.cursor(pymysql.cursors.SSCursor)
        destination = self._destination.cursor()
        copied = 0
        try:
            source.execute(
                f"SELECT {select} FROM `{self._source_schema}`.`{table}`{where}", args
            )
            while rows := source.fetchmany(COPY_CHUNK):
                self._write(destination, table, rows)
                copied += len(rows)
        finally:
            source.close()
        return copied

    def _in_transaction(self, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self._destination.begin()
        try:
            result = work()
        except BaseException:
            self._destination.rollback()
            raise
        self._destination.commit()
        return result

    def pull(self) -> dict[str, Any]:
        """Stream the master rows, then the part rows, in one transaction."""
        return self._in_transaction(
            lambda: {"rows": self._copy(MASTER), "part_rows": self._copy(PART)}
        )

    def pull_one(self, key: dict[str, Any]) -> dict[str, Any]:
        """Copy one row and its part rows in one transaction."""
        where = " WHERE group_id = %s AND row_id = %s"
        args = (key["group_id"], key["row_id"])
        return self._in_transaction(
            lambda: {
                "rows": self._copy(MASTER, where, args),
                "part_rows": self._copy(PART, where, args),
            }
        )

    def delete_flagged(self) -> dict[str, Any]:
        """Delete every row and part row in one transaction (nothing is flagged)."""

        def delete() -> dict[str, Any]:
            cursor = self._destination.cursor()
            schema = self._destination_schema
            parts = cursor.execute(f"DELETE FROM `{schema}`.`{PART}`")
            rows = cursor.execute(f"DELETE FROM `{schema}`.`{MASTER}`")
            return {"deleted": rows, "part_rows": parts}

        return self._in_transaction(delete)


class RenderedRawSystem(RawSystem):
    """The raw copy with the link's own technique, still without a lifecycle.

    The source server writes each row as the text of an SQL row constructor
    (link/adapters/literals.py), so Python neither decodes nor escapes values:
    the limit for a copy that reads and writes the way the link does.
    """

    def link(self, command: dict[str, Any]) -> dict[str, Any]:
        """Connect, create the destination tables and load the link's literals.

        Imported here, not at the top: the plain raw copy's memory figure
        should not include the link package (DataJoint and all), and no
        timed pull should include the import.
        """
        import link.adapters.literals

        self._literals = link.adapters.literals
        self._renderings: dict[str, Any] = {}
        return super().link(command)

    def _select_list(self, table: str) -> str:
        """Return the rendered select list of a table, planned on first use."""
        metadata = self._source.cursor()
        metadata.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self._source_schema, table),
        )
        types = {str(name): str(data_type) for name, data_type in metadata.fetchall()}
        rendering = self._literals.plan_rendering(table, list(types), types, set())
        self._renderings[table] = rendering
        return rendering.select_list(types)

    def _write(
        self, cursor: Any, table: str, rows: tuple[tuple[Any, ...], ...]
    ) -> None:
        """Join the rendered rows into INSERT statements and run them."""
        literals = self._literals
        rendering = self._renderings[table]
        texts = literals.row_literals(rows, rendering, self._destination.escape)
        for statement in literals.insert_statements(
            f"`{self._destination_schema}`.`{table}`",
            rendering.insert_columns,
            texts,
            literals.STATEMENT_BYTES,
        ):
            cursor.execute(statement)


def serve(system: System, commands: TextIO, answers: TextIO) -> None:
    """Answer commands until quit or the end of the input."""
    for line in commands:
        command = json.loads(line)
        operation = command["op"]
        if operation == "quit":
            return
        reset_peak_rss()
        try:
            started = time.perf_counter()
            if operation == "link":
                detail = system.link(command)
            elif operation == "pull":
                detail = system.pull()
            elif operation == "pull_one":
                detail = system.pull_one(command["key"])
            elif operation == "delete_flagged":
                detail = system.delete_flagged()
            else:
                raise ValueError(f"unknown command {operation!r}")
            seconds = time.perf_counter() - started
            answer: dict[str, Any] = {
                "seconds": seconds,
                "peak_rss": peak_rss(),
                "detail": detail,
            }
        except Exception:
            answer = {"error": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> None:
    """Serve one system's commands; stray output goes to standard error."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    warnings.simplefilter("ignore")
    systems: dict[str, Callable[[], System]] = {
        "link": LinkSystem,
        "raw": RawSystem,
        "rendered": RenderedRawSystem,
    }
    serve(systems[sys.argv[1]](), sys.stdin, answers)


if __name__ == "__main__":
    main()
