"""A link pointed at a helper table that the older single-process tool created.

The older tool (datajoint-link 0.11, DataJoint 0.14) declared its helper
("outbound") table with a foreign key to the source table and the three
columns below, without DataJoint 2's type markers in the column comments. This
test builds such a table by hand, with rows the older tool left behind, and
checks that the link takes it over as it is.
"""

from __future__ import annotations

from typing import Any

import datajoint as dj
import pytest

from demo.pipeline import SourcePipeline
from link import link
from link.domain.events import RowCounts
from tests.conftest import SchemaNames
from tests.helpers import filled_pipeline
from tests.servers import Endpoints

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(source_admin: dj.Instance, schema_names: SchemaNames) -> SourcePipeline:
    """Declare and fill the demo pipeline in a fresh source schema."""
    return filled_pipeline(
        source_admin,
        schema_names,
        subjects=2,
        sessions_per_subject=2,
        trials_per_session=2,
    )


def create_older_helper(source_admin: dj.Instance, names: SchemaNames) -> None:
    """Create the helper table as the older tool did, with one shared row."""
    connection = source_admin.connection
    connection.query(f"CREATE DATABASE `{names.helper}`")
    connection.query(
        f"CREATE TABLE `{names.helper}`.`session_outbound` ("
        " `subject_id` int(11) NOT NULL,"
        " `session_idx` smallint(6) NOT NULL,"
        " `process` enum('PULL','DELETE','NONE') NOT NULL DEFAULT 'NONE',"
        " `is_flagged` enum('TRUE','FALSE') NOT NULL DEFAULT 'FALSE',"
        " `is_deprecated` enum('TRUE','FALSE') NOT NULL DEFAULT 'FALSE',"
        " PRIMARY KEY (`subject_id`, `session_idx`),"
        " FOREIGN KEY (`subject_id`, `session_idx`)"
        f" REFERENCES `{names.source}`.`session` (`subject_id`, `session_idx`)"
        " ON UPDATE CASCADE ON DELETE RESTRICT"
        ") ENGINE=InnoDB COMMENT='outbound table'"
    )
    # Row (1, 0) was shared by the older tool; row (1, 1) was flagged and
    # deleted downstream, so it is deprecated.
    connection.query(
        f"INSERT INTO `{names.helper}`.`session_outbound` VALUES"
        " (1, 0, 'NONE', 'FALSE', 'FALSE'), (1, 1, 'NONE', 'TRUE', 'TRUE')"
    )


@pytest.mark.usefixtures("link_environment")
def test_a_link_takes_over_the_older_tools_helper_table(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LINK_BROKER")
    create_older_helper(source_admin, schema_names)

    @link(
        endpoints.source_host,
        schema_names.source,
        schema_names.helper,
        "SessionOutbound",
        schema_names.destination,
    )
    class Session:
        pass

    table: Any = Session
    copy_as_the_older_tool_did(source_admin, destination_admin, schema_names)
    assert table().source.flagged.keys() == [{"subject_id": 1, "session_idx": 1}]

    pulled = table().source.pull()
    deleted = (table() & "subject_id = 1").delete()

    assert pulled.counts == RowCounts(shared=2, deprecated=1, already_shared=1)
    assert deleted == 1
    assert len(table()) == 2
    comment = source_admin.connection.query(
        "SELECT table_comment FROM information_schema.tables"
        " WHERE table_schema = %s AND table_name = 'session_outbound'",
        args=(schema_names.helper,),
    ).fetchone()
    assert comment == ("outbound table",)  # reused, not declared anew
    remaining = source_admin.connection.query(
        f"SELECT subject_id, session_idx, process, is_flagged, is_deprecated"
        f" FROM `{schema_names.helper}`.`session_outbound` ORDER BY 1, 2"
    ).fetchall()
    assert remaining == (
        (1, 1, "NONE", "TRUE", "TRUE"),
        (2, 0, "NONE", "FALSE", "FALSE"),
        (2, 1, "NONE", "FALSE", "FALSE"),
    )


def copy_as_the_older_tool_did(
    source_admin: dj.Instance, destination_admin: dj.Instance, names: SchemaNames
) -> None:
    """Put row (1, 0) and its parts in the destination, as the older tool had."""
    for table in ("session", "session__trial", "session__stimulus"):
        rows = source_admin.connection.query(
            f"SELECT * FROM `{names.source}`.`{table}`"
            " WHERE subject_id = 1 AND session_idx = 0"
        ).fetchall()
        for row in rows:
            placeholders = ", ".join(["%s"] * len(row))
            destination_admin.connection.query(
                f"INSERT INTO `{names.destination}`.`{table}` VALUES ({placeholders})",
                args=row,
            )
