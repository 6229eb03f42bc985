"""Tests of the bookkeeping that turns a pull's batch results into a completion."""

from __future__ import annotations

import datetime

from link.domain.events import (
    BatchTransferred,
    PullRequested,
    PullStarted,
    RowCounts,
    RowFailure,
    fingerprint,
)
from link.domain.progress import MAX_REPORTED_FAILURES, PullProgress, completed_before

REQUEST_ID = "request-1"
LINK_ID = "source:3306/lab.session->lab_copy.session"


def failures(prefix: str, count: int) -> list[RowFailure]:
    """Return count failures whose keys tell them apart."""
    return [
        RowFailure(key={"id": f"{prefix}{index}"}, reason=f"{prefix} failed")
        for index in range(count)
    ]


def started(
    batch_count: int,
    counts: RowCounts | None = None,
    failed: list[RowFailure] | None = None,
    requested: int = 10,
    attempt: str = "first",
) -> PullStarted:
    """Return the start event of the pull."""
    return PullStarted(
        request_id=REQUEST_ID,
        link_id=LINK_ID,
        attempt=attempt,
        requested=requested,
        batch_count=batch_count,
        counts=counts or RowCounts(),
        failures=failed or [],
    )


def batch(
    index: int,
    count: int,
    counts: RowCounts | None = None,
    failed: list[RowFailure] | None = None,
    attempt: str = "first",
) -> BatchTransferred:
    """Return the event of one finished batch."""
    return BatchTransferred(
        request_id=REQUEST_ID,
        link_id=LINK_ID,
        attempt=attempt,
        batch_index=index,
        batch_count=count,
        counts=counts or RowCounts(shared=1),
        failures=failed or [],
    )


def test_a_pull_completes_only_when_its_start_and_every_batch_are_in() -> None:
    progress = PullProgress(request_id=REQUEST_ID)

    progress = progress.with_start(started(2, RowCounts(already_shared=1)))
    after_start = progress.completion()
    progress = progress.with_batch(batch(0, 2, RowCounts(shared=3)))
    after_first_batch = progress.completion()
    progress = progress.with_batch(batch(1, 2, RowCounts(shared=1, tainted=1)))
    completed = progress.completion()

    assert after_start is None
    assert after_first_batch is None
    assert completed is not None
    assert completed.request_id == REQUEST_ID
    assert completed.link_id == LINK_ID
    assert completed.requested == 10
    assert completed.counts == RowCounts(shared=4, tainted=1, already_shared=1)


def test_batches_that_arrive_before_the_start_are_kept() -> None:
    progress = PullProgress(request_id=REQUEST_ID)

    progress = progress.with_batch(batch(1, 2, RowCounts(shared=2)))
    progress = progress.with_batch(batch(0, 2, RowCounts(deprecated=1)))
    before_start = progress.completion()
    progress = progress.with_start(started(2))
    after_start = progress.completion()

    assert before_start is None
    assert progress.link_id == LINK_ID
    assert after_start is not None
    assert after_start.counts == RowCounts(shared=2, deprecated=1)


def test_a_repeated_batch_is_counted_once() -> None:
    progress = PullProgress(request_id=REQUEST_ID).with_start(started(2))

    once = progress.with_batch(batch(0, 2, RowCounts(shared=3)))
    twice = once.with_batch(batch(0, 2, RowCounts(shared=3)))
    done = twice.with_batch(batch(1, 2, RowCounts(shared=1)))

    assert twice is once
    assert twice.rows_done == 3
    assert twice.completion() is None
    completed = done.completion()
    assert completed is not None
    assert completed.counts == RowCounts(shared=4)


def test_a_repeated_start_is_ignored() -> None:
    first = started(1, RowCounts(already_shared=2), requested=3)
    progress = PullProgress(request_id=REQUEST_ID).with_start(first)

    again = progress.with_start(started(1, RowCounts(already_shared=5), requested=9))
    completed = again.with_batch(batch(0, 1, RowCounts(shared=1))).completion()

    assert again is progress
    assert again.start == first
    assert again.rows_done == 2
    assert completed is not None
    assert completed.requested == 3
    assert completed.counts == RowCounts(shared=1, already_shared=2)


def test_a_pull_without_batches_completes_on_its_start() -> None:
    progress = PullProgress(request_id=REQUEST_ID)

    progress = progress.with_start(started(0, RowCounts(already_shared=4)))
    completed = progress.completion()

    assert completed is not None
    assert completed.counts == RowCounts(already_shared=4)
    assert completed.failures == []


def test_failures_are_listed_in_order_start_first() -> None:
    progress = PullProgress(request_id=REQUEST_ID)
    start_failures = failures("start-", 1)
    first_failures = failures("first-", 2)
    second_failures = failures("second-", 1)

    progress = progress.with_batch(batch(1, 2, RowCounts(failed=1), second_failures))
    progress = progress.with_batch(batch(0, 2, RowCounts(failed=2), first_failures))
    progress = progress.with_start(started(2, RowCounts(failed=1), start_failures))
    completed = progress.completion()

    assert completed is not None
    assert completed.failures == start_failures + first_failures + second_failures
    assert completed.counts.failed == 4


def test_failures_are_capped_but_all_are_counted() -> None:
    per_event = MAX_REPORTED_FAILURES // 2 + 1
    start_failures = failures("start-", per_event)
    batch_failures = failures("batch-", per_event)
    progress = PullProgress(request_id=REQUEST_ID).with_start(
        started(1, RowCounts(failed=per_event), start_failures)
    )

    progress = progress.with_batch(
        batch(0, 1, RowCounts(failed=per_event), batch_failures)
    )
    completed = progress.completion()

    assert completed is not None
    assert len(completed.failures) == MAX_REPORTED_FAILURES
    assert (
        completed.failures == (start_failures + batch_failures)[:MAX_REPORTED_FAILURES]
    )
    assert completed.counts.failed == 2 * per_event


def test_recording_leaves_the_earlier_progress_unchanged() -> None:
    empty = PullProgress(request_id=REQUEST_ID)

    started_progress = empty.with_start(started(1))
    with_batch = started_progress.with_batch(batch(0, 1))
    outcome = with_batch.completion()
    assert outcome is not None
    announced = with_batch.settled(outcome)

    assert empty.start is None
    assert started_progress.batches == {}
    assert not with_batch.completed
    assert announced.completed
    assert announced.outcome == outcome
    assert announced.batches == {}


def test_a_fingerprint_tells_a_repeated_request_from_a_different_one() -> None:
    link = "sessions"
    first = PullRequested(request_id="r", link=link, keys=[{"a": 1}, {"a": 2}])
    reordered = PullRequested(request_id="r", link=link, keys=[{"a": 2}, {"a": 1}])
    other = PullRequested(request_id="r", link=link, keys=[{"a": 3}])

    assert fingerprint(first) == fingerprint(reordered)
    assert fingerprint(first) != fingerprint(other)


def test_the_fingerprint_outlives_the_batches() -> None:
    start = started(1).model_copy(update={"fingerprint": "abc"})
    progress = PullProgress(request_id=REQUEST_ID).with_start(start)
    progress = progress.with_batch(batch(0, 1))
    outcome = progress.completion()
    assert outcome is not None

    assert progress.settled(outcome).fingerprint == "abc"


def test_a_fingerprint_is_the_same_in_every_release() -> None:
    # Fingerprints are kept in the progress table's changelog: a service of a
    # newer release must compute the same digest for a repeated request.
    request = PullRequested(
        request_id="r",
        link="bench",
        keys=[
            {"row_id": 7, "group_id": 1},
            {"group_id": 0, "row_id": None},
            {"name": "ünï'\"", "day": "2026-12-04"},
        ],
    )

    assert fingerprint(request) == (
        "032dd6460656b7df4bf4fc0fe07256b051fdcd4efe12e577d95686050a7fbe71"
    )


def test_a_later_attempt_replaces_an_unfinished_one_and_its_batches() -> None:
    # The first attempt handed over one batch of two, then its worker stopped;
    # the second found those rows shared and sends the other rows again.
    progress = PullProgress(request_id=REQUEST_ID)
    progress = progress.with_start(started(2, attempt="first"))
    progress = progress.with_batch(batch(0, 2, RowCounts(shared=5), attempt="first"))

    progress = progress.with_start(
        started(1, RowCounts(already_shared=5), attempt="second")
    )
    waiting = progress.completion()
    progress = progress.with_batch(batch(0, 1, RowCounts(shared=5), attempt="second"))
    completed = progress.completion()

    assert waiting is None, "the first attempt's batch 0 is not the second's"
    assert completed is not None
    assert completed.counts == RowCounts(shared=5, already_shared=5)


def test_events_of_a_replaced_attempt_change_nothing_when_they_come_again() -> None:
    # A restarted progress follower reads events again that the table holds
    # already: the first attempt's start must not take the place of the second.
    progress = PullProgress(request_id=REQUEST_ID)
    progress = progress.with_start(started(2, attempt="first"))
    progress = progress.with_start(started(1, attempt="second"))

    again = progress.with_start(started(2, attempt="first"))
    again = again.with_batch(batch(0, 2, attempt="first"))
    again = again.with_batch(batch(1, 2, attempt="first"))

    assert again == progress
    assert again.completion() is None


def test_batches_of_an_attempt_whose_start_is_not_in_yet_wait_for_it() -> None:
    progress = PullProgress(request_id=REQUEST_ID)
    progress = progress.with_start(started(1, attempt="first"))
    progress = progress.with_batch(batch(0, 1, RowCounts(shared=2), attempt="second"))
    before_its_start = progress.completion()

    progress = progress.with_start(started(1, attempt="second"))
    completed = progress.completion()

    assert before_its_start is None, "a batch of another attempt completes nothing"
    assert completed is not None
    assert completed.counts == RowCounts(shared=2)
    assert progress.early == []


def test_progress_kept_by_an_older_release_is_read() -> None:
    # The pull-request service's table holds progress as JSON; a release
    # before attempts kept version 1 events in it.
    first_batch: dict[str, object] = {
        "schema_version": 1,
        "type": "BatchTransferred",
        "request_id": REQUEST_ID,
        "link_id": LINK_ID,
        "batch_index": 0,
        "batch_count": 2,
        "counts": {"shared": 1},
    }
    kept = {
        "request_id": REQUEST_ID,
        "link_id": LINK_ID,
        "start": {
            "schema_version": 1,
            "type": "PullStarted",
            "request_id": REQUEST_ID,
            "link_id": LINK_ID,
            "requested": 3,
            "batch_count": 2,
            "counts": {"already_shared": 1},
        },
        "batches": {"0": first_batch},
    }

    progress = PullProgress.model_validate(kept)
    progress = progress.with_batch(
        BatchTransferred.model_validate(
            {**first_batch, "schema_version": 2, "batch_index": 1}
        )
    )
    completed = progress.completion()

    assert completed is not None
    assert completed.counts == RowCounts(shared=2, already_shared=1)


def test_only_an_outcome_older_than_the_moment_has_completed_before_it() -> None:
    progress = PullProgress(request_id=REQUEST_ID).with_start(started(0))
    outcome = progress.completion()
    assert outcome is not None
    kept_open = progress.model_dump(mode="json")
    kept = progress.settled(outcome).model_dump(mode="json")
    completed_at = outcome.completed_at
    second = datetime.timedelta(seconds=1)

    assert completed_before(kept, completed_at + second)
    assert not completed_before(kept, completed_at - second)
    assert not completed_before(kept_open, completed_at + second)
    assert not completed_before({"outcome": {"completed_at": "soon"}}, completed_at)
