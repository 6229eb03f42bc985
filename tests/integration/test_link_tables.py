"""The link decorator and its handlers against the real source and destination."""

from __future__ import annotations

from typing import Any

import datajoint as dj
import pytest

from demo.pipeline import SourcePipeline
from link import link
from link.adapters.gateway import LinkGateway
from link.adapters.servers import open_destination, open_source
from link.config import LinkSettings
from link.domain.events import PullRequested, RowCounts
from link.errors import ConfigurationError, IncompleteRequestError, SourceError
from link.executors import PullResult
from link.service_layer.pulls import start_pull, transfer_batch
from tests.conftest import SchemaNames
from tests.helpers import (
    assert_rows_equal,
    fetch_sorted,
    linked_session,
)
from tests.servers import Endpoints

pytestmark = pytest.mark.integration


def helper_columns(source_admin: dj.Instance, names: SchemaNames) -> dict[str, str]:
    rows = source_admin.connection.query(
        "SELECT column_name, column_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'session_helper'",
        args=(names.helper,),
    ).fetchall()
    return dict(rows)


@pytest.mark.usefixtures("link_environment")
def test_link_declares_the_older_tools_helper_table(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    linked_session(endpoints, schema_names, "SessionHelper")

    assert helper_columns(source_admin, schema_names) == {
        "subject_id": "int(11)",
        "session_idx": "smallint(6)",
        "process": "enum('PULL','DELETE','NONE')",
        "is_flagged": "enum('TRUE','FALSE')",
        "is_deprecated": "enum('TRUE','FALSE')",
    }


@pytest.mark.usefixtures("link_environment")
def test_destination_keeps_datajoint_types_without_foreign_keys(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    destination_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names, "SessionHelper")

    heading = table().heading.attributes
    assert heading["subject_id"].original_type == "int32"  # resolved via Subject
    assert heading["session_idx"].original_type == "int16"
    assert heading["settings"].json
    assert heading["sampling_rate"].original_type == "float64"
    trial = table.Trial().heading.attributes
    assert trial["trace"].type == "<blob>"
    assert trial["reaction_time"].nullable
    constraints = destination_admin.connection.query(
        "SELECT COUNT(*) FROM information_schema.referential_constraints"
        " WHERE constraint_schema = %s AND referenced_table_name NOT LIKE 'session%%'",
        args=(schema_names.destination,),
    ).fetchone()
    assert constraints[0] == 0


@pytest.mark.usefixtures("link_environment")
def test_source_is_browsable_with_restrictions(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names, "SessionHelper")

    keys = (table().source & "subject_id = 2").keys()

    assert sorted(key["session_idx"] for key in keys) == [0, 1]
    assert len(table().source) == 6
    assert len(table().source.flagged) == 0


@pytest.mark.usefixtures("link_environment")
def test_a_class_without_source_table_is_a_clear_error(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    with pytest.raises(SourceError, match="no table for class 'Recording'"):

        @link(
            endpoints.source_host,
            schema_names.source,
            schema_names.helper,
            "RecordingHelper",
            schema_names.destination,
        )
        class Recording:
            pass


@pytest.mark.usefixtures("link_environment")
def test_wrong_link_password_is_a_clear_error(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LINK_PASS", "not-the-password")

    with pytest.raises(SourceError, match="check LINK_USER and LINK_PASS"):
        linked_session(endpoints, schema_names, "SessionHelper")


def pull_without_kafka(table: Any, restriction: str, batch_size: int = 2) -> RowCounts:
    """Run both pull steps in-process, as the two services would."""
    context = table._link_context
    gateway = LinkGateway(
        context.ref,
        open_source(context.ref.source_host, LinkSettings()),
        open_destination(),
    )
    keys = (table().source & restriction).keys()
    request = PullRequested(request_id="test-1", link=context.ref, keys=keys)
    started = start_pull(request, gateway, batch_size=batch_size)
    counts = started.started.counts
    for batch in started.batches:
        counts = counts + transfer_batch(batch, gateway).counts
    return counts


@pytest.mark.usefixtures("link_environment")
def test_pull_steps_copy_rows_and_parts_value_by_value(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names, "SessionHelper")

    counts = pull_without_kafka(table, "subject_id = 2")

    assert counts == RowCounts(shared=2)
    restriction = "subject_id = 2"
    assert_rows_equal(
        fetch_sorted(pipeline.Session, restriction), fetch_sorted(table())
    )
    assert_rows_equal(
        fetch_sorted(pipeline.Session.Trial, restriction), fetch_sorted(table.Trial())
    )
    assert_rows_equal(
        fetch_sorted(pipeline.Session.Stimulus, restriction),
        fetch_sorted(table.Stimulus()),
    )


@pytest.mark.usefixtures("link_environment")
def test_pulling_shared_rows_again_changes_nothing(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names, "SessionHelper")
    pull_without_kafka(table, "subject_id = 1")

    counts = pull_without_kafka(table, "subject_id <= 2")

    assert counts == RowCounts(shared=2, already_shared=2)
    assert len(table()) == 4


@pytest.mark.usefixtures("link_environment")
def test_a_row_flagged_before_it_arrives_ends_deprecated(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names, "SessionHelper")
    context = table._link_context
    gateway = LinkGateway(
        context.ref,
        open_source(context.ref.source_host, LinkSettings()),
        open_destination(),
    )
    keys = (table().source & "subject_id = 3").keys()
    started = start_pull(
        PullRequested(request_id="test-2", link=context.ref, keys=keys), gateway, 10
    )
    helper = f"`{schema_names.helper}`.`session_helper`"
    source_admin.connection.query(
        f"UPDATE {helper} SET is_flagged = 'TRUE'"
        " WHERE subject_id = 3 AND session_idx = 0"
    )

    counts = transfer_batch(started.batches[0], gateway).counts

    assert counts == RowCounts(shared=1, deprecated=1)
    assert len(table() & "subject_id = 3") == 1
    deprecated = source_admin.connection.query(
        f"SELECT process, is_deprecated FROM {helper} WHERE session_idx = 0"
    ).fetchone()
    assert deprecated == ("NONE", "TRUE")


@pytest.mark.usefixtures("link_environment")
def test_an_unreachable_source_server_is_a_clear_error(
    schema_names: SchemaNames,
) -> None:
    with pytest.raises(SourceError, match=r"127\.0\.0\.1:1 cannot be reached"):

        @link("127.0.0.1:1", schema_names.source, schema_names.helper, "H", "dst_x")
        class Session:
            pass


@pytest.mark.usefixtures("link_environment")
def test_a_stores_mapping_naming_an_unconfigured_store_is_refused(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    with pytest.raises(ConfigurationError, match="source store 'nosuch'"):

        @link(
            endpoints.source_host,
            schema_names.source,
            schema_names.helper,
            "SessionHelper",
            schema_names.destination,
            stores={"nosuch": "alsonot"},
        )
        class Session:
            pass


@pytest.mark.usefixtures("embedded_link_environment")
def test_an_embedded_handle_raises_for_failed_rows_when_waited_on(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    pipeline: SourcePipeline,
) -> None:
    table = linked_session(endpoints, schema_names, helper="SessionHelper")
    (table().source & "subject_id = 1").pull()
    # A row whose deletion is under way cannot be pulled meanwhile.
    source_admin.connection.query(
        f"UPDATE `{schema_names.helper}`.`session_helper` SET process = 'DELETE'"
        " WHERE subject_id = 1 AND session_idx = 0"
    )

    handle = (table().source & "subject_id = 1").pull(wait=False)

    assert handle.status == "completed"
    with pytest.raises(IncompleteRequestError, match="1 of 2 row") as raised:
        handle.wait()
    result = raised.value.result
    assert isinstance(result, PullResult)
    assert result.counts.already_shared == 1
