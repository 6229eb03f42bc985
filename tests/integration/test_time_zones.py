"""Timestamps keep their instant between servers set to different time zones.

A TIMESTAMP is stored as an instant but read and written in the session's time
zone. The servers here are given zones nine hours apart for the length of each
test (new sessions only), so that a copy through the servers' own zones would
shift every value by nine hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datajoint as dj
import pytest

from link import link
from tests.conftest import SchemaNames
from tests.servers import Endpoints

pytestmark = pytest.mark.integration

# Instants as seconds since the epoch: one with a fraction, and a key that,
# shifted by nine hours, would name another row of the table.
STAMPS = {1: 1_700_000_000.25, 2: 1_700_032_400.0}
KEY_STAMP = 1_700_000_000


@pytest.fixture
def zones_apart(
    source_admin: dj.Instance, destination_admin: dj.Instance
) -> Iterator[None]:
    """Set the source server to UTC+05:00 and the destination to UTC-04:00."""
    source_admin.connection.query("SET GLOBAL time_zone = '+05:00'")
    destination_admin.connection.query("SET GLOBAL time_zone = '-04:00'")
    try:
        yield
    finally:
        source_admin.connection.query("SET GLOBAL time_zone = DEFAULT")
        destination_admin.connection.query("SET GLOBAL time_zone = DEFAULT")


@pytest.fixture
def stamped_source(source_admin: dj.Instance, schema_names: SchemaNames) -> str:
    """Declare a table keyed and valued by timestamps; fill it in UTC."""
    table = f"`{schema_names.source}`.`event`"
    connection = source_admin.connection
    connection.query(f"CREATE DATABASE `{schema_names.source}`")
    connection.query(
        f"CREATE TABLE {table} (event_id int NOT NULL, at timestamp(3) NOT NULL,"
        " noted timestamp(2) NULL, PRIMARY KEY (event_id, at))"
    )
    for event_id, noted in STAMPS.items():
        connection.query(
            f"INSERT INTO {table} VALUES (%s, FROM_UNIXTIME(%s), FROM_UNIXTIME(%s))",
            args=(event_id, KEY_STAMP + 9 * 3600 * (event_id - 1), noted),
        )
    return table


def instants(connection: Any, table: str) -> list[tuple[Any, ...]]:
    """Return each row's timestamps as seconds since the epoch, whatever the zone."""
    rows = connection.query(
        f"SELECT event_id, UNIX_TIMESTAMP(at), UNIX_TIMESTAMP(noted) FROM {table}"
        " ORDER BY event_id"
    ).fetchall()
    return [(event_id, float(at), float(noted)) for event_id, at, noted in rows]


def link_events(endpoints: Endpoints, names: SchemaNames) -> Any:
    """Link the event table to the destination."""

    @link(
        endpoints.source_host,
        names.source,
        names.helper,
        "EventOutbound",
        names.destination,
    )
    class Event:
        """Events shared by the source lab."""

    return Event


@pytest.mark.usefixtures("zones_apart", "embedded_link_environment")
def test_pulled_timestamps_keep_their_instants(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    stamped_source: str,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    Event = link_events(endpoints, schema_names)  # noqa: N806 - a table class

    result = (Event().source & "event_id = 1").pull()

    assert result.counts.shared == 1
    destination = f"`{schema_names.destination}`.`event`"
    expected = instants(source_admin.connection, stamped_source)
    assert instants(destination_admin.connection, destination) == expected[:1]

    # A lost session is replaced by DataJoint in the server's zone: the link
    # must notice and work in UTC again.
    for side, instance in (
        ("source", Event._link_context.source),
        ("destination", Event._link_context.destination),
    ):
        admin = source_admin if side == "source" else destination_admin
        admin.connection.query(f"KILL {instance.connection.connection_id}")

    Event().source.pull()

    assert instants(destination_admin.connection, destination) == expected
    deleted = (Event() & "event_id = 2").delete(prompt=False)
    assert deleted == 1
    assert instants(destination_admin.connection, destination) == expected[:1]
