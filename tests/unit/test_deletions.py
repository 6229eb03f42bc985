"""Tests of the deletion handler and the re-drive bookkeeping, in memory."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from link.domain.events import DeletionCounts, DeletionRequested
from link.domain.keys import CanonicalKey
from link.domain.lifecycle import (
    DeletionStep,
    HelperRow,
    Observation,
    Process,
    State,
    decide_deletion_step,
)
from link.service_layer.deletions import delete_batch, delete_rows
from link.service_layer.redrive import StuckRowTracker, redrive_pull
from tests.unit.fakes import CODEC, LINK, InMemoryGateway, keys_of


def deletion(*subject_ids: int) -> DeletionRequested:
    return DeletionRequested(
        request_id="delete-1", link=LINK, keys=keys_of(*subject_ids)
    )


@pytest.mark.parametrize(
    ("helper", "in_destination", "step"),
    [
        (HelperRow(Process.NONE, False, False), True, DeletionStep.START),
        (HelperRow(Process.NONE, True, False), True, DeletionStep.START),
        (HelperRow(Process.DELETE, False, False), True, DeletionStep.REMOVE),
        (HelperRow(Process.DELETE, True, False), False, DeletionStep.FINISH),
        (HelperRow(Process.PULL, False, False), False, DeletionStep.BEING_PULLED),
        (HelperRow(Process.PULL, False, False), True, DeletionStep.BEING_PULLED),
        (HelperRow(Process.NONE, True, True), False, DeletionStep.NOTHING),
        (None, False, DeletionStep.NOTHING),
    ],
)
def test_each_state_has_one_next_deletion_step(
    helper: HelperRow | None, in_destination: bool, step: DeletionStep
) -> None:
    observation = Observation(True, helper, in_destination)

    assert decide_deletion_step(observation) is step


def test_a_row_the_source_deleted_is_removed_and_then_found_gone() -> None:
    orphaned = Observation(in_source=False, helper=None, in_destination=True)
    removed = Observation(in_source=False, helper=None, in_destination=False)

    assert decide_deletion_step(orphaned) is DeletionStep.REMOVE_ORPHAN
    assert decide_deletion_step(removed) is DeletionStep.NOTHING


def test_deleting_rows_the_source_deleted_removes_them_without_helper_rows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = InMemoryGateway()
    gateway.share(1)
    gateway.share(2)
    gateway.source.discard((2,))  # the source's delete cascades into the helper
    del gateway.helper[(2,)]

    with caplog.at_level(logging.WARNING, logger="link"):
        result = delete_rows(deletion(1, 2), gateway, batch_size=10)

    assert result.counts == DeletionCounts(unshared=1, orphaned=1)
    assert result.failures == []
    assert gateway.destination == set()
    assert gateway.helper == {}
    assert "1 row(s) were no longer in the source table" in caplog.text
    assert delete_rows(deletion(2), gateway, 10).counts == DeletionCounts(
        already_gone=1
    )


def test_deleting_unflagged_rows_returns_them_to_unshared() -> None:
    gateway = InMemoryGateway()
    gateway.share(1)
    gateway.share(2)

    result = delete_rows(deletion(1), gateway, batch_size=10)

    assert result.counts == DeletionCounts(unshared=1)
    assert gateway.state(1) is State.UNSHARED
    assert (1,) not in gateway.helper
    assert gateway.state(2) is State.SHARED


def test_deleting_flagged_rows_deprecates_them() -> None:
    gateway = InMemoryGateway()
    gateway.share(1, flagged=True)

    result = delete_rows(deletion(1), gateway, batch_size=10)

    assert result.counts == DeletionCounts(deprecated=1)
    assert gateway.state(1) is State.DEPRECATED
    assert gateway.helper[(1,)] == HelperRow(Process.NONE, True, True)


def test_a_repeated_deletion_finds_the_rows_gone() -> None:
    gateway = InMemoryGateway()
    gateway.share(1)
    delete_rows(deletion(1), gateway, batch_size=10)

    result = delete_rows(deletion(1), gateway, batch_size=10)

    assert result.counts == DeletionCounts(already_gone=1)


def test_a_deletion_resumes_after_a_crash_at_any_step() -> None:
    gateway = InMemoryGateway()
    gateway.share(1)
    gateway.share(2)
    gateway.mark_deleting([(1,), (2,)])  # crashed after the first step
    gateway.remove_from_destination([(2,)])  # and row 2 after the second

    counts, failures = delete_batch([(1,), (2,)], gateway)

    assert counts == DeletionCounts(unshared=2)
    assert failures == []
    assert gateway.state(1) is State.UNSHARED
    assert gateway.state(2) is State.UNSHARED


def test_a_row_being_pulled_is_not_deleted() -> None:
    gateway = InMemoryGateway(source=[1])
    gateway.activate([(1,)])

    counts, failures = delete_batch([(1,)], gateway)

    assert counts == DeletionCounts(failed=1)
    assert "being pulled" in failures[0].reason
    assert gateway.state(1) is State.ACTIVATED


class FlaggedWhileSettling(InMemoryGateway):
    """The source flags rows just before their helper rows are removed."""

    def __init__(self, times: int) -> None:
        """Flag the rows at the next `times` removals."""
        super().__init__()
        self.times = times

    def remove_helper(self, keys: Sequence[CanonicalKey]) -> int:
        if keys and self.times:
            self.times -= 1
            for key in keys:
                self._flag(key)
        return super().remove_helper(keys)


def test_a_row_flagged_during_its_deletion_ends_deprecated() -> None:
    gateway = FlaggedWhileSettling(times=1)
    gateway.share(1)
    gateway.share(2, flagged=True)

    counts, failures = delete_batch([(1,), (2,)], gateway)

    assert failures == []
    assert counts == DeletionCounts(deprecated=2)
    assert gateway.state(1) is State.DEPRECATED
    assert gateway.state(2) is State.DEPRECATED


def test_a_row_whose_flag_keeps_changing_is_reported_after_a_few_tries() -> None:
    gateway = FlaggedWhileSettling(times=99)
    gateway.share(1)

    # Each attempt finds the row unflagged; the fake flags it, then unflags
    # it again before the next read, as a source lab toggling a flag would.
    original_read = gateway.read_helper

    def read_unflagged(keys: Sequence[CanonicalKey]) -> dict[CanonicalKey, HelperRow]:
        for key in keys:
            if key in gateway.helper and gateway.helper[key].process is Process.DELETE:
                gateway.helper[key] = HelperRow(Process.DELETE, False, False)
        return original_read(keys)

    gateway.read_helper = read_unflagged  # type: ignore[method-assign]

    counts, failures = delete_batch([(1,)], gateway)

    assert counts == DeletionCounts(failed=1)
    assert "flag" in failures[0].reason
    assert gateway.state(1) is State.ACTIVATED
    assert gateway.times == 99 - 3


def test_deletions_are_cut_into_batches() -> None:
    gateway = InMemoryGateway()
    for subject in range(1, 8):
        gateway.share(subject)

    result = delete_rows(deletion(*range(1, 8)), gateway, batch_size=3)

    assert result.counts == DeletionCounts(unshared=7)
    assert result.requested == 7
    assert gateway.destination == set()


def test_a_row_is_stuck_only_when_two_scans_in_a_row_find_it() -> None:
    tracker = StuckRowTracker()

    first = tracker.stuck("link", {Process.PULL: [(1,), (2,)], Process.DELETE: []})
    second = tracker.stuck("link", {Process.PULL: [(2,)], Process.DELETE: [(3,)]})
    third = tracker.stuck("link", {Process.PULL: [(2,)], Process.DELETE: [(3,)]})

    assert first == {Process.PULL: [], Process.DELETE: []}
    assert second == {Process.PULL: [(2,)], Process.DELETE: []}
    assert third == {Process.PULL: [(2,)], Process.DELETE: [(3,)]}


def test_a_redriven_pull_announces_its_batches() -> None:
    pull = redrive_pull(LINK, CODEC, [(1,), (2,), (3,)], batch_size=2)

    assert pull.started.requested == 3
    assert pull.started.batch_count == 2
    assert [batch.keys for batch in pull.batches] == [keys_of(1, 2), keys_of(3)]
    assert {batch.request_id for batch in pull.batches} == {pull.started.request_id}
    assert pull.started.request_id.startswith("redrive-")
