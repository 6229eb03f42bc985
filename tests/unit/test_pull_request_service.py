"""Tests of the pull-request service's own logic, without Kafka or servers."""

from __future__ import annotations

import pytest

from link.domain.events import BatchTransferred, PullStarted, RowCounts
from link.errors import InvalidRequestError
from services.pull_requests import parse_progress, sweep_interval


def test_old_outcomes_are_swept_at_a_tenth_of_their_retention_within_bounds() -> None:
    assert sweep_interval(7 * 24 * 3600.0) == 3600.0
    assert sweep_interval(600.0) == 60.0
    assert sweep_interval(2.0) == 1.0


def test_progress_events_of_either_kind_and_version_are_read() -> None:
    started = PullStarted(
        request_id="r",
        link_id="l",
        attempt="a",
        requested=1,
        batch_count=1,
        counts=RowCounts(),
    )
    batch_v1 = (
        b'{"type": "BatchTransferred", "schema_version": 1, "request_id": "r",'
        b' "link_id": "l", "batch_index": 0, "batch_count": 1,'
        b' "counts": {"shared": 1}}'
    )

    read_start = parse_progress(started.model_dump_json().encode())
    read_batch = parse_progress(batch_v1)

    assert read_start == started
    assert isinstance(read_batch, BatchTransferred)
    assert read_batch.attempt == ""
    assert read_batch.counts == RowCounts(shared=1)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b'{"type": "PullCompleted", "request_id": "r"}', "not a valid PullStarted"),
        (
            b'{"type": "PullStarted", "schema_version": 3, "request_id": "r"}',
            "Schema version 3 of PullStarted",
        ),
    ],
)
def test_a_progress_event_that_cannot_be_read_is_refused_with_the_reason(
    payload: bytes, reason: str
) -> None:
    with pytest.raises(InvalidRequestError, match=reason):
        parse_progress(payload)
