"""Contains the benchmark's data: its source tables, their rows, and row counts.

The source tables (see bench.shape) are filled with raw multi-row INSERTs. The
blob is a DataJoint-packed array of 1,024 random bytes, so that the older tool
decodes and re-encodes it as it would real data, while raw copies move its
bytes verbatim.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.settings import Connection, Servers, split_address
from bench.shape import (
    BLOB_BYTES,
    FILL_CHUNK,
    HELPER_TABLE,
    MASTER,
    MASTER_DDL,
    PART,
    PART_DDL,
    PARTS_PER_ROW,
    key_of,
)


def _rows(count: int) -> Iterator[tuple[int, int, str, bytes]]:
    import numpy as np
    from datajoint.blob import pack

    for index in range(count):
        group_id, row_id = key_of(index)
        payload = np.frombuffer(os.urandom(BLOB_BYTES), dtype=np.uint8)
        yield group_id, row_id, f"row {index} of the benchmark", pack(payload)


def _chunks(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def create_source(servers: Servers, schema: str, count: int) -> None:
    """Create a source schema with count rows and their part rows."""
    connection = servers.source_admin()
    try:
        cursor = connection.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        cursor.execute(f"CREATE DATABASE `{schema}`")
        cursor.execute(MASTER_DDL.format(schema=schema))
        cursor.execute(PART_DDL.format(schema=schema))
        master = f"INSERT INTO `{schema}`.`{MASTER}` VALUES (%s, %s, %s, %s)"
        part = f"INSERT INTO `{schema}`.`{PART}` VALUES (%s, %s, %s, %s)"
        for chunk in _chunks(_rows(count), FILL_CHUNK):
            connection.begin()
            cursor.executemany(master, chunk)
            cursor.executemany(
                part,
                [
                    (group_id, row_id, sample, sample * 0.5 + row_id)
                    for group_id, row_id, _label, _payload in chunk
                    for sample in range(PARTS_PER_ROW)
                ],
            )
            connection.commit()
    finally:
        connection.close()
    _record_lineage(servers, schema)


def _record_lineage(servers: Servers, schema: str) -> None:
    # DataJoint 2 joins on attribute lineage, kept per schema in ~lineage; a
    # schema declared in plain SQL (or by DataJoint 0.14) has none, and this
    # project's `.source.flagged` then fails to restrict the source by the
    # helper table. A source lab on DataJoint 2 has it, so the benchmark
    # records it the way DataJoint 2 does.
    import datajoint as dj

    host, port = split_address(servers.source_host)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instance = dj.Instance(
            host,
            servers.source_admin_user,
            servers.source_admin_password,
            port=port,
        )
        try:
            instance.Schema(schema, create_schema=False).rebuild_lineage()
        finally:
            instance.connection.close()


def drop_schemas(connection: Connection, schemas: list[str]) -> None:
    """Drop the schemas that exist; quietly skip the others."""
    cursor = connection.cursor()
    for schema in schemas:
        cursor.execute(f"DROP DATABASE IF EXISTS `{schema}`")


def _count(connection: Connection, sql: str) -> int:
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
        (value,) = cursor.fetchone()
    except Exception as error:
        if getattr(error, "args", (None,))[0] == 1146:  # the table does not exist
            return 0
        raise
    return int(value)


@dataclass(frozen=True)
class Counts:
    """Where a link's rows are: destination rows and helper rows by state."""

    destination_rows: int
    destination_part_rows: int
    helper_shared: int
    helper_deprecated: int
    helper_in_process: int

    def as_dict(self) -> dict[str, int]:
        """Return the counts as a JSON-ready dict."""
        return {
            "destination_rows": self.destination_rows,
            "destination_part_rows": self.destination_part_rows,
            "helper_shared": self.helper_shared,
            "helper_deprecated": self.helper_deprecated,
            "helper_in_process": self.helper_in_process,
        }


def count_link(
    servers: Servers, helper_schema: str | None, destination_schema: str
) -> Counts:
    """Count a link's destination rows and its helper rows by state."""
    destination = servers.destination()
    try:
        rows = _count(
            destination, f"SELECT COUNT(*) FROM `{destination_schema}`.`{MASTER}`"
        )
        part_rows = _count(
            destination, f"SELECT COUNT(*) FROM `{destination_schema}`.`{PART}`"
        )
    finally:
        destination.close()
    if helper_schema is None:
        return Counts(rows, part_rows, 0, 0, 0)
    source = servers.source_admin()
    helper = f"`{helper_schema}`.`{HELPER_TABLE}`"
    try:
        shared = _count(
            source,
            f"SELECT COUNT(*) FROM {helper} WHERE process = 'NONE'"
            " AND is_flagged = 'FALSE' AND is_deprecated = 'FALSE'",
        )
        deprecated = _count(
            source,
            f"SELECT COUNT(*) FROM {helper} WHERE process = 'NONE'"
            " AND is_flagged = 'TRUE' AND is_deprecated = 'TRUE'",
        )
        in_process = _count(
            source, f"SELECT COUNT(*) FROM {helper} WHERE process <> 'NONE'"
        )
    finally:
        source.close()
    return Counts(rows, part_rows, shared, deprecated, in_process)


def flag_all(servers: Servers, helper_schema: str) -> int:
    """Flag every helper row of a link, as the source lab would; return how many."""
    connection = servers.source_admin()
    try:
        return int(
            connection.cursor().execute(
                f"UPDATE `{helper_schema}`.`{HELPER_TABLE}` SET is_flagged = 'TRUE'"
            )
        )
    finally:
        connection.close()
