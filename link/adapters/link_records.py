"""Contains the record of links kept on the destination server.

Each destination schema that holds linked tables gets a small table,
``~link``, with one row per link (its tables, never credentials). The deletion
reconciler reads these records to find rows that a crash left mid-way. The
``~`` prefix keeps the table out of DataJoint's listings, as for its own
``~lineage`` table.
"""

from __future__ import annotations

import logging

import datajoint as dj
from pydantic import ValidationError

from link.domain.events import LinkRef

logger = logging.getLogger(__name__)

REGISTRY_TABLE = "~link"


def register_link(destination: dj.Connection, ref: LinkRef) -> None:
    """Record a link in its destination schema; recording it again changes nothing."""
    table = f"`{ref.destination_schema}`.`{REGISTRY_TABLE}`"
    destination.query(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " link_id VARCHAR(255) NOT NULL PRIMARY KEY,"
        " link LONGTEXT NOT NULL COMMENT 'the link as LinkRef JSON'"
        ") COMMENT 'links whose destination tables are in this schema'"
    )
    destination.query(
        f"INSERT INTO {table} (link_id, link) VALUES (%s, %s)"
        " ON DUPLICATE KEY UPDATE link = VALUES(link)",
        args=(ref.link_id, ref.model_dump_json()),
    )


def registered_links(destination: dj.Connection) -> list[LinkRef]:
    """Return every link recorded on the destination server."""
    schemas = destination.query(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = %s",
        args=(REGISTRY_TABLE,),
    ).fetchall()
    links: list[LinkRef] = []
    for (schema,) in schemas:
        rows = destination.query(
            f"SELECT link_id, link FROM `{schema}`.`{REGISTRY_TABLE}`"
        ).fetchall()
        for link_id, text in rows:
            try:
                links.append(LinkRef.model_validate_json(text))
            except ValidationError:
                logger.warning(
                    "ignored unreadable link record %s in %s", link_id, schema
                )
    return links
