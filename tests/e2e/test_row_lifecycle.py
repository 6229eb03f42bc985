"""Every user-visible transition of a linked row, in embedded mode and over Kafka.

Each test runs twice: with the handlers in the test process (no LINK_BROKER)
and with the three services as separate processes over Kafka. Both modes must
behave the same.
"""

from __future__ import annotations

import logging

import datajoint as dj
import pytest

from demo.pipeline import SourcePipeline
from link import AlreadySharedWarning, OrphanedRowsWarning
from link.domain.events import DeletionCounts, RowCounts
from link.errors import LinkError, NoRowsError
from tests.conftest import SchemaNames
from tests.helpers import (
    assert_rows_equal,
    fetch_sorted,
    linked_session,
)
from tests.servers import Endpoints

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["embedded", "kafka"])
def mode(
    request: pytest.FixtureRequest,
    link_environment: None,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """Carry requests out in-process or through the services over Kafka."""
    if request.param == "kafka":
        services = request.getfixturevalue("services")
        monkeypatch.setenv("LINK_TOPIC_PREFIX", services.topic_prefix)
        monkeypatch.setenv("LINK_PULL_TIMEOUT", "60")
    else:
        monkeypatch.delenv("LINK_BROKER")
    return str(request.param)


def helper_row(
    source_admin: dj.Instance, names: SchemaNames, key: str, table: str = "outbound"
) -> tuple[str, str, str] | None:
    row = source_admin.connection.query(
        f"SELECT process, is_flagged, is_deprecated FROM `{names.helper}`.`{table}`"
        f" WHERE {key}"
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def flag(source_admin: dj.Instance, names: SchemaNames, key: str, value: str) -> None:
    """Flag or unflag a row as the source lab's operators do."""
    source_admin.connection.query(
        f"UPDATE `{names.helper}`.`outbound` SET is_flagged = '{value}' WHERE {key}"
    )


ROW = "subject_id = 2 AND session_idx = 1"


@pytest.mark.usefixtures("mode")
def test_restricted_pull_copies_rows_and_parts(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names)

    result = (table().source & "subject_id = 2").pull()

    assert result.counts == RowCounts(shared=2)
    assert_rows_equal(
        fetch_sorted(pipeline.Session, "subject_id = 2"), fetch_sorted(table())
    )
    assert_rows_equal(
        fetch_sorted(pipeline.Session.Trial, "subject_id = 2"),
        fetch_sorted(table.Trial()),
    )


@pytest.mark.usefixtures("mode")
def test_pulling_shared_rows_is_a_no_op_that_says_so(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 1").pull()

    with (
        caplog.at_level(logging.WARNING, logger="link"),
        pytest.warns(
            AlreadySharedWarning, match="2 requested row.* already shared"
        ) as warned,
    ):
        result = (table().source & "subject_id = 1").pull()

    assert result.counts == RowCounts(already_shared=2)
    assert warned[0].filename == __file__  # the warning points at the user's call
    assert "already shared" in caplog.text
    assert len(table()) == 2


@pytest.mark.usefixtures("mode")
def test_a_pull_of_nothing_is_an_error_and_a_deletion_of_nothing_deletes_none(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 2").pull()

    with pytest.raises(NoRowsError, match="matched no rows"):
        (table().source & "subject_id = 99").pull()
    # As DataJoint's own delete: nothing flagged, nothing deleted.
    assert (table() & table().source.flagged).delete(prompt=False) == 0
    assert len(table()) == 2


@pytest.mark.usefixtures("mode")
def test_deleting_an_unflagged_row_returns_it_to_unshared(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 2").pull()

    deleted = (table() & ROW).delete()

    assert deleted == 1
    assert len(table()) == 1
    assert len(table.Trial() & ROW) == 0
    assert helper_row(source_admin, schema_names, ROW) is None
    assert (table().source & ROW).pull().counts == RowCounts(shared=1)


@pytest.mark.usefixtures("mode")
def test_a_restricted_delete_deletes_exactly_those_rows(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names)
    table().source.pull()

    (table() & "session_idx = 0").delete()

    remaining = table().keys()
    assert sorted(key["session_idx"] for key in remaining) == [1, 1, 1]
    assert len(table.Trial()) == 3 * 3
    assert len(table.Stimulus()) == 3


@pytest.mark.usefixtures("mode")
def test_flagged_rows_are_deleted_and_deprecated(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 2").pull()
    flag(source_admin, schema_names, ROW, "TRUE")  # Shared -> Tainted
    assert len(table().source.flagged) == 1

    deleted = (table() & table().source.flagged).delete()

    assert deleted == 1
    assert len(table() & ROW) == 0
    assert helper_row(source_admin, schema_names, ROW) == ("NONE", "TRUE", "TRUE")
    # A deprecated row is not pulled again while the source keeps it flagged.
    assert (table().source & ROW).pull().counts == RowCounts(deprecated=1)
    assert len(table() & ROW) == 0


@pytest.mark.usefixtures("mode")
def test_a_deprecated_row_that_the_source_unflags_can_be_pulled_again(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & ROW).pull()
    flag(source_admin, schema_names, ROW, "TRUE")
    (table() & ROW).delete()
    flag(source_admin, schema_names, ROW, "FALSE")  # Deprecated -> Unshared

    result = (table().source & ROW).pull()

    assert result.counts == RowCounts(shared=1)
    assert helper_row(source_admin, schema_names, ROW) == ("NONE", "FALSE", "FALSE")
    assert_rows_equal(fetch_sorted(pipeline.Session, ROW), fetch_sorted(table()))


@pytest.mark.usefixtures("mode")
def test_a_row_flagged_after_arrival_is_tainted_and_still_present(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & ROW).pull()

    flag(source_admin, schema_names, ROW, "TRUE")

    assert len(table() & ROW) == 1
    assert helper_row(source_admin, schema_names, ROW) == ("NONE", "TRUE", "FALSE")
    # Pulled again, it counts tainted, as a Deprecated row counts deprecated.
    assert (table().source & ROW).pull().counts == RowCounts(tainted=1)
    assert len(table() & ROW) == 1


@pytest.mark.usefixtures("mode")
def test_two_links_from_one_source_table_do_not_disturb_each_other(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    first = linked_session(endpoints, schema_names)
    second = linked_session(
        endpoints, schema_names, "OutboundB", destination_suffix="b"
    )
    try:
        (first().source & "subject_id = 1").pull()
        (second().source & "subject_id <= 2").pull()

        (first() & "subject_id = 1").delete()

        assert len(first()) == 0
        assert len(second()) == 4
        row = "subject_id = 1 AND session_idx = 0"
        assert helper_row(source_admin, schema_names, row) is None
        assert helper_row(source_admin, schema_names, row, "outbound_b") == (
            "NONE",
            "FALSE",
            "FALSE",
        )
    finally:
        destination_admin.connection.query(
            f"DROP DATABASE IF EXISTS `{schema_names.destination}b`"
        )


@pytest.mark.usefixtures("mode")
def test_the_destination_is_written_by_the_link_alone(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & ROW).pull()

    with pytest.raises(LinkError, match="written by the link alone"):
        table().insert1({"subject_id": 9, "session_idx": 0})
    with pytest.raises(LinkError, match="delete\\(\\)"):
        (table() & ROW).delete_quick()
    with pytest.raises(LinkError, match="written by the link alone"):
        table.Trial().insert1({"subject_id": 2, "session_idx": 1, "trial_idx": 9})
    with pytest.raises(LinkError, match="delete\\(\\)"):
        (table.Trial() & ROW).delete_quick()
    with pytest.raises(LinkError, match="leave with their master"):
        (table.Trial() & ROW).delete()
    assert len(table()) == 1
    assert len(table.Trial()) == 3


@pytest.mark.usefixtures("mode")
def test_a_linked_table_is_dropped_only_once_delete_has_emptied_it(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & ROW).pull()

    with pytest.raises(LinkError, match=r"holds 1 row.*delete\(\) them first"):
        table().drop(prompt=False)
    with pytest.raises(LinkError, match="holds 1 row"):
        table().drop_quick()
    with pytest.raises(LinkError, match="dropped with the linked table"):
        table.Trial().drop()
    with pytest.raises(LinkError, match="dropped with the linked table"):
        table.Trial().drop_quick()
    assert len(table()) == 1

    (table() & ROW).delete()
    table().drop(prompt=False)

    # Declared again, the link pulls the row as if for the first time.
    table = linked_session(endpoints, schema_names)
    assert helper_row(source_admin, schema_names, ROW) is None
    assert (table().source & ROW).pull().counts.shared == 1
    assert len(table.Trial()) == 3


def test_progress_bar_advances_to_every_row(
    mode: str,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LINK_BATCH_SIZE", "2")
    table = linked_session(endpoints, schema_names)

    table().source.pull(display_progress=True)

    assert "6/6" in capsys.readouterr().err


@pytest.mark.usefixtures("mode")
def test_deletion_counts_are_reported(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 3").pull()
    flag(source_admin, schema_names, "subject_id = 3 AND session_idx = 0", "TRUE")
    context = table._link_context

    result = context.executor.delete(context.message_keys(table() & "subject_id = 3"))

    assert result.counts == DeletionCounts(unshared=1, deprecated=1)


@pytest.mark.usefixtures("mode")
def test_delete_asks_first_in_safemode_and_source_works_on_the_class(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table.source & ROW).pull()  # on the class, as on an instance
    monkeypatch.setitem(dj.config, "safemode", True)
    answers = iter(["no", "yes"])
    monkeypatch.setattr("builtins.input", lambda _question: next(answers))

    refused = (table() & ROW).delete()
    accepted = (table() & ROW).delete()

    assert refused == 0
    assert accepted == 1
    assert len(table()) == 0


@pytest.mark.usefixtures("mode")
def test_the_source_restricted_by_the_destination_tells_what_is_left_to_pull(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 1").pull()

    left = table().source - table()
    pulled = table().source & table()

    assert len(left) == 4
    assert len(pulled) == 2
    assert left.pull().counts.shared == 4
    assert len(table().source - table()) == 0


@pytest.mark.usefixtures("mode")
def test_a_row_that_the_source_deleted_is_deleted_downstream_on_request(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 2").pull()
    # The source lab deletes the row the DataJoint way: the delete cascades
    # into the helper table, a child of the source table (Shared -> Orphaned).
    (pipeline.Session & ROW).delete(prompt=False)
    assert helper_row(source_admin, schema_names, ROW) is None
    assert len(table() & ROW) == 1

    with pytest.warns(OrphanedRowsWarning, match="1 row.s. were no longer in"):
        deleted = (table() & ROW).delete()

    assert deleted == 1
    assert len(table() & ROW) == 0
    assert len(table.Trial() & ROW) == 0
    assert len(table.Stimulus() & ROW) == 0
    assert len(table()) == 1
    assert len(table.Trial()) == 3


@pytest.mark.usefixtures("mode")
def test_rows_that_the_source_deleted_are_counted_apart(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 2").pull()
    (pipeline.Session & ROW).delete(prompt=False)
    context = table._link_context
    keys = context.message_keys(table() & "subject_id = 2")

    result = context.executor.delete(keys)
    again = context.executor.delete(keys)

    assert result.counts == DeletionCounts(unshared=1, orphaned=1)
    assert result.failures == []
    # A repeated request finds both rows gone, the deleted one included.
    assert again.counts == DeletionCounts(already_gone=2)
