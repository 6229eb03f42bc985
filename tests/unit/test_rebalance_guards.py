"""The pure parts of services/recovery.py; the race itself is an integration test."""

from __future__ import annotations

from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from services.recovery import (
    FINISHING_METHODS,
    ActivePartitions,
    keep_messages_through_rebalances,
)


def test_an_empty_set_of_active_partitions_admits_none_and_still_tests_true() -> None:
    live: set[TP] = set()
    partitions = ActivePartitions(live)
    requests = TP("link.pull-requests", 0)

    # aiokafka reads "partitions and tp not in partitions": with a plain empty
    # set that is False for every partition, and every record comes back.
    assert bool(partitions)
    assert requests not in partitions

    live.add(requests)  # faust resumes the partition

    assert requests in partitions
    assert TP("link.pull-requests", 1) not in partitions


def test_the_changes_are_made_once_however_often_they_are_asked_for() -> None:
    keep_messages_through_rebalances()
    wrapped = {name: getattr(Recovery, name) for name in FINISHING_METHODS}
    fetch: Any = AIOKafkaConsumerThread._fetch_records

    keep_messages_through_rebalances()

    for name, method in wrapped.items():
        assert getattr(Recovery, name) is method
        # functools.wraps keeps faust's own method one level down, not two.
        assert not hasattr(method.__wrapped__, "__wrapped__")
    assert not hasattr(fetch.__wrapped__, "__wrapped__")
    assert AIOKafkaConsumerThread._fetch_records is fetch


def test_the_methods_that_the_fix_wraps_still_exist() -> None:
    for name in FINISHING_METHODS:
        assert callable(getattr(Recovery, name, None)), f"faust lost Recovery.{name}"
