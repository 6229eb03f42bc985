"""Tests of the pull handlers, run against an in-memory gateway."""

from __future__ import annotations

import pytest

from link.domain.events import RowCounts, TransferRequested
from link.domain.lifecycle import HelperRow, Process, State
from link.errors import InvalidRequestError
from link.service_layer.pulls import start_pull, transfer_batch
from tests.unit.fakes import LINK, InMemoryGateway, keys_of, pull_request, pulled


@pytest.fixture
def gateway() -> InMemoryGateway:
    """Return a link whose source holds rows 1 to 5 and nothing else."""
    return InMemoryGateway(source=range(1, 6))


def test_start_pull_activates_unshared_rows(gateway: InMemoryGateway) -> None:
    request = pull_request(1, 2, 3)

    result = start_pull(request, gateway, batch_size=10)

    assert [gateway.state(key) for key in (1, 2, 3, 4)] == [
        State.ACTIVATED,
        State.ACTIVATED,
        State.ACTIVATED,
        State.UNSHARED,
    ]
    assert gateway.helper[(1,)] == HelperRow(Process.PULL, False, False)
    assert result.started.requested == 3
    assert result.started.batch_count == 1
    assert result.started.counts == RowCounts()
    assert result.batches[0].keys == keys_of(1, 2, 3)


def test_start_pull_of_unshared_rows_activates_them_without_looking_first(
    gateway: InMemoryGateway,
) -> None:
    start_pull(pull_request(1, 2, 3), gateway, batch_size=10)

    assert gateway.observations == 0


def test_start_pull_looks_at_every_row_when_one_is_not_unshared(
    gateway: InMemoryGateway,
) -> None:
    gateway.share(2)

    result = start_pull(pull_request(1, 2, 3), gateway, batch_size=10)

    assert gateway.observations == 1
    assert [gateway.state(key) for key in (1, 2, 3)] == [
        State.ACTIVATED,
        State.SHARED,
        State.ACTIVATED,
    ]
    assert result.started.counts == RowCounts(already_shared=1)


def test_start_pull_reactivates_a_deprecated_row_that_was_unflagged(
    gateway: InMemoryGateway,
) -> None:
    gateway.helper[(1,)] = HelperRow(Process.NONE, False, True)

    result = start_pull(pull_request(1), gateway, batch_size=10)

    assert gateway.helper[(1,)] == HelperRow(Process.PULL, False, False)
    assert result.batches[0].keys == keys_of(1)


def test_start_pull_cuts_the_rows_into_batches(gateway: InMemoryGateway) -> None:
    request = pull_request(5, 4, 3, 2, 1)

    result = start_pull(request, gateway, batch_size=2)

    batches = result.batches
    assert result.started.batch_count == 3
    assert [batch.batch_index for batch in batches] == [0, 1, 2]
    assert {batch.batch_count for batch in batches} == {3}
    assert [batch.keys for batch in batches] == [
        keys_of(5, 4),
        keys_of(3, 2),
        keys_of(1),
    ]
    assert {batch.request_id for batch in batches} == {"request-1"}
    assert [batch.link for batch in batches] == [LINK] * 3


def test_start_pull_counts_rows_that_are_already_shared_or_tainted(
    gateway: InMemoryGateway,
) -> None:
    gateway.share(1)
    gateway.share(2, flagged=True)

    result = start_pull(pull_request(1, 2, 3), gateway, batch_size=10)

    assert result.started.counts == RowCounts(already_shared=1, tainted=1)
    assert result.started.requested == 3
    assert [batch.keys for batch in result.batches] == [keys_of(3)]
    assert gateway.state(1) is State.SHARED
    assert gateway.state(2) is State.TAINTED


def test_start_pull_counts_deprecated_rows_without_pulling_them(
    gateway: InMemoryGateway,
) -> None:
    gateway.helper[(1,)] = HelperRow(Process.NONE, True, True)

    result = start_pull(pull_request(1), gateway, batch_size=10)

    assert result.started.counts == RowCounts(deprecated=1)
    assert result.started.batch_count == 0
    assert result.batches == []


def test_start_pull_reports_keys_missing_from_the_source(
    gateway: InMemoryGateway,
) -> None:
    request = pull_request(1, 99)

    result = start_pull(request, gateway, batch_size=10)

    [failure] = result.started.failures
    assert failure.key == {"subject_id": 99}
    assert "not in the source" in failure.reason
    assert result.started.counts == RowCounts(failed=1)
    assert (99,) not in gateway.helper
    assert [batch.keys for batch in result.batches] == [keys_of(1)]


def test_start_pull_reports_rows_the_source_deleted_but_the_destination_has(
    gateway: InMemoryGateway,
) -> None:
    gateway.destination.add((99,))

    result = start_pull(pull_request(99), gateway, batch_size=10)

    [failure] = result.started.failures
    assert failure.key == {"subject_id": 99}
    assert "delete()" in failure.reason
    assert (99,) not in gateway.helper


def test_start_pull_reports_rows_being_deleted(gateway: InMemoryGateway) -> None:
    gateway.share(1)
    gateway.helper[(1,)] = HelperRow(Process.DELETE, False, False)

    result = start_pull(pull_request(1), gateway, batch_size=10)

    [failure] = result.started.failures
    assert failure.key == {"subject_id": 1}
    assert "being deleted" in failure.reason
    assert gateway.helper[(1,)].process is Process.DELETE


def test_start_pull_names_a_row_once_however_often_it_is_requested(
    gateway: InMemoryGateway,
) -> None:
    request = pull_request(1, 2, 1)

    result = start_pull(request, gateway, batch_size=10)

    assert result.started.requested == 2
    assert result.batches[0].keys == keys_of(1, 2)


def test_a_repeated_pull_request_continues_the_pull(gateway: InMemoryGateway) -> None:
    first = start_pull(pull_request(1, 2), gateway, batch_size=10)

    second = start_pull(pull_request(1, 2), gateway, batch_size=10)

    # The same rows travel again, under an attempt of their own.
    assert second.started.attempt != first.started.attempt
    assert {batch.attempt for batch in second.batches} == {second.started.attempt}
    assert second.started.model_copy(update={"attempt": ""}) == (
        first.started.model_copy(update={"attempt": ""})
    )
    assert [batch.keys for batch in second.batches] == [
        batch.keys for batch in first.batches
    ]
    assert gateway.state(1) is State.ACTIVATED


def test_start_pull_refuses_an_invalid_key_naming_its_position(
    gateway: InMemoryGateway,
) -> None:
    request = pull_request(1, 2, "three")

    with pytest.raises(InvalidRequestError, match="Key number 3") as caught:
        start_pull(request, gateway, batch_size=10)

    assert "'subject_id'" in str(caught.value)
    assert gateway.helper == {}


def test_transfer_batch_copies_and_shares_the_rows() -> None:
    gateway = InMemoryGateway(source=range(1, 4), parts_per_row=2)
    batch = pulled(gateway, 1, 2, 3)

    result = transfer_batch(batch, gateway)

    assert result.counts == RowCounts(shared=3)
    assert result.failures == []
    assert (result.batch_index, result.batch_count) == (0, 1)
    assert result.link_id == LINK.link_id
    assert gateway.copied == [(1,), (2,), (3,)]
    assert [gateway.state(key) for key in (1, 2, 3)] == [State.SHARED] * 3


def test_a_repeated_transfer_copies_nothing_and_counts_the_same(
    gateway: InMemoryGateway,
) -> None:
    batch = pulled(gateway, 1, 2, 3)
    first = transfer_batch(batch, gateway)

    second = transfer_batch(batch, gateway)

    assert gateway.copied == [(1,), (2,), (3,)]
    assert second == first
    assert second.counts == RowCounts(shared=3)


def test_a_transfer_after_a_crash_between_copy_and_finish_finishes(
    gateway: InMemoryGateway,
) -> None:
    batch = pulled(gateway, 1, 2)
    gateway.copy([(1,)])

    result = transfer_batch(batch, gateway)

    assert gateway.copied == [(1,), (2,)]
    assert result.counts == RowCounts(shared=2)
    assert gateway.state(1) is State.SHARED


def test_a_batch_of_rows_being_pulled_is_copied_without_asking_the_destination(
    gateway: InMemoryGateway,
) -> None:
    batch = pulled(gateway, 1, 2)
    gateway.observations = 0

    transfer_batch(batch, gateway)

    assert (gateway.observations, gateway.copy_attempts) == (0, 1)


def test_a_batch_meeting_its_rows_in_the_destination_looks_again_and_finishes(
    gateway: InMemoryGateway,
) -> None:
    batch = pulled(gateway, 1, 2, 3)
    gateway.copy([(2,)])
    gateway.copy_attempts = gateway.observations = 0

    result = transfer_batch(batch, gateway)

    # The first copy is refused as a whole; the second copies what is missing.
    assert (gateway.observations, gateway.copy_attempts) == (1, 2)
    assert gateway.copied == [(2,), (1,), (3,)]
    assert result.counts == RowCounts(shared=3)


def test_a_row_flagged_before_its_copy_ends_deprecated(
    gateway: InMemoryGateway,
) -> None:
    batch = pulled(gateway, 1, 2)
    gateway.flag(1)

    result = transfer_batch(batch, gateway)

    assert result.counts == RowCounts(shared=1, deprecated=1)
    assert gateway.copied == [(2,)]
    assert gateway.state(1) is State.DEPRECATED
    assert gateway.helper[(1,)] == HelperRow(Process.NONE, True, True)


def test_a_row_flagged_while_it_travels_ends_tainted(
    gateway: InMemoryGateway,
) -> None:
    batch = pulled(gateway, 1, 2)
    gateway.flag_while_copying = {(1,)}

    result = transfer_batch(batch, gateway)

    assert result.counts == RowCounts(shared=1, tainted=1)
    assert gateway.state(1) is State.TAINTED
    assert gateway.state(2) is State.SHARED


def test_a_row_flagged_after_its_copy_ends_tainted(gateway: InMemoryGateway) -> None:
    batch = pulled(gateway, 1)
    gateway.copy([(1,)])
    gateway.flag(1)

    result = transfer_batch(batch, gateway)

    assert result.counts == RowCounts(tainted=1)
    assert gateway.state(1) is State.TAINTED


def test_a_transfer_reports_rows_that_are_not_being_pulled(
    gateway: InMemoryGateway,
) -> None:
    batch = pulled(gateway, 1, 2)
    del gateway.helper[(2,)]

    result = transfer_batch(batch, gateway)

    [failure] = result.failures
    assert failure.key == {"subject_id": 2}
    assert "not being pulled" in failure.reason
    assert result.counts == RowCounts(shared=1, failed=1)
    assert gateway.copied == [(1,)]


def test_transfer_batch_refuses_an_invalid_key_naming_its_position(
    gateway: InMemoryGateway,
) -> None:
    batch = TransferRequested(
        request_id="request-1",
        link=LINK,
        batch_index=0,
        batch_count=1,
        keys=[{"subject_id": 1}, {"subject": 2}],
    )

    with pytest.raises(InvalidRequestError, match="Key number 2") as caught:
        transfer_batch(batch, gateway)

    assert "missing subject_id" in str(caught.value)
    assert gateway.copied == []
