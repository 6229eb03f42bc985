"""Following published requests by their events (no broker: a scripted listener)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from link.adapters.kafka import RequestEvent
from link.domain.events import (
    BatchTransferred,
    PullCompleted,
    PullStarted,
    RequestRejected,
    RowCounts,
)
from link.errors import InvalidRequestError, RequestTimeoutError
from link.executors import PendingRequests


class ScriptedListener:
    """Gives the events it was given, in order, and notes what it forgot."""

    def __init__(self, events: list[RequestEvent]) -> None:
        """Keep the events to give."""
        self._events = events
        self.forgotten: list[str] = []

    def events(
        self, request_ids: set[str], timeout: float, longest: float | None = None
    ) -> Iterator[RequestEvent]:
        yield from self._events

    def forget(self, request_id: str) -> None:
        self.forgotten.append(request_id)


def started(request_id: str, batches: int) -> PullStarted:
    return PullStarted(
        request_id=request_id,
        link_id="l",
        requested=2 * batches + 1,
        batch_count=batches,
        counts=RowCounts(already_shared=1),
    )


def batch(request_id: str, index: int, batches: int) -> BatchTransferred:
    return BatchTransferred(
        request_id=request_id,
        link_id="l",
        batch_index=index,
        batch_count=batches,
        counts=RowCounts(shared=2),
    )


def test_the_last_batch_result_completes_the_pull() -> None:
    listener = ScriptedListener(
        [started("a", 2), batch("a", 1, 2), batch("a", 1, 2), batch("a", 0, 2)]
    )
    pending = PendingRequests(listener, ["a"], "l")  # type: ignore[arg-type]

    [outcome] = pending.wait(1.0)

    assert isinstance(outcome, PullCompleted)
    assert outcome.counts == RowCounts(shared=4, already_shared=1)
    assert outcome.requested == 5
    assert listener.forgotten == ["a"]


def test_a_completion_event_of_the_service_completes_it_too() -> None:
    answer = PullCompleted(
        request_id="a", link_id="l", requested=3, counts=RowCounts(already_shared=3)
    )
    listener = ScriptedListener([answer, batch("a", 0, 1)])
    pending = PendingRequests(listener, ["a"], "l")  # type: ignore[arg-type]

    assert pending.wait(1.0) == [answer]


def test_a_pull_missing_a_batch_is_still_pending() -> None:
    listener = ScriptedListener([started("a", 2), batch("a", 0, 2)])
    pending = PendingRequests(listener, ["a"], "l")  # type: ignore[arg-type]

    pending.listen(0.1)

    assert pending.status == "pending"


def test_a_started_request_that_falls_silent_is_told_apart_from_an_unheard_one() -> (
    None
):
    listener = ScriptedListener([started("a", 2), batch("a", 0, 2)])
    pending = PendingRequests(listener, ["a", "b"], "l")  # type: ignore[arg-type]

    with pytest.raises(RequestTimeoutError, match=r"Request\(s\) a of link l started"):
        pending.wait(0.1)


def test_requests_never_heard_of_ask_whether_the_services_run() -> None:
    pending = PendingRequests(ScriptedListener([]), ["b"], "l")  # type: ignore[arg-type]

    with pytest.raises(RequestTimeoutError, match="services running"):
        pending.wait(0.1)


def test_a_rejection_is_raised_with_its_reason() -> None:
    listener = ScriptedListener(
        [RequestRejected(request_id="a", reason="the link is not registered")]
    )
    pending = PendingRequests(listener, ["a"], "l")  # type: ignore[arg-type]

    with pytest.raises(InvalidRequestError, match="not registered"):
        pending.wait(1.0)


class CountingBar:
    """Stands for the tqdm bar: adds up what it is advanced by."""

    def __init__(self) -> None:
        """Start at no rows."""
        self.n = 0

    def update(self, rows: int) -> None:
        self.n += rows


def test_the_progress_bar_counts_a_repeated_batch_once() -> None:
    listener = ScriptedListener(
        [started("a", 2), batch("a", 0, 2), batch("a", 0, 2), batch("a", 1, 2)]
    )
    bar = CountingBar()
    pending = PendingRequests(listener, ["a"], "l", bar)  # type: ignore[arg-type]

    pending.wait(1.0)

    assert bar.n == 5


def test_the_progress_bar_reaches_every_row_when_the_completion_comes_first() -> None:
    # The service's completion travels on another topic than the batch results
    # and may be read before the last of them.
    answer = PullCompleted(
        request_id="a",
        link_id="l",
        requested=5,
        counts=RowCounts(shared=4, already_shared=1),
    )
    listener = ScriptedListener([started("a", 2), batch("a", 0, 2), answer])
    bar = CountingBar()
    pending = PendingRequests(listener, ["a"], "l", bar)  # type: ignore[arg-type]

    pending.wait(1.0)

    assert bar.n == 5
