"""A pull travels over Kafka between the two real servers and the three services."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import datajoint as dj
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from tqdm import tqdm

from demo.pipeline import SourcePipeline
from link.adapters.kafka import Topics
from link.domain.events import (
    LinkRef,
    PullRequested,
    PullStarted,
    RowCounts,
    TransferRequested,
    fingerprint,
)
from link.errors import InvalidRequestError
from tests.conftest import SchemaNames
from tests.e2e.conftest import (
    OUTCOME_RETENTION,
    RunningServices,
    kill_service,
    start_service,
)
from tests.helpers import (
    assert_rows_equal,
    fetch_sorted,
    filled_pipeline,
    linked_session,
)
from tests.servers import Endpoints

pytestmark = pytest.mark.e2e


@pytest.fixture
def pipeline(source_admin: dj.Instance, schema_names: SchemaNames) -> SourcePipeline:
    """Declare and fill the demo pipeline in a fresh source schema."""
    return filled_pipeline(
        source_admin,
        schema_names,
        subjects=4,
        sessions_per_subject=3,
        trials_per_session=4,
    )


def read_topic(
    broker: str, topic: str, wanted: int, timeout: float = 30.0
) -> list[Any]:
    """Read a topic from its beginning until wanted messages arrived."""
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": f"test-{uuid.uuid4().hex}"}
    )
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < wanted and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(json.loads(message.value() or b"null"))
    finally:
        consumer.close()
    return messages


def partition_count(broker: str, topic: str) -> int:
    """Return how many partitions a topic has."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "probe"})
    try:
        return len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        consumer.close()


class Requests:
    """Publishes requests as another system does, and reads their outcomes."""

    def __init__(self, broker: str, topics: Topics) -> None:
        """Open a producer on the broker."""
        self._broker = broker
        self._topics = topics
        self._producer = Producer({"bootstrap.servers": broker})

    def publish(self, request: PullRequested, partition: int = -1) -> None:
        """Publish a pull request keyed by its id, and wait until Kafka has it.

        By default the producer's partitioner picks the partition.
        """
        self._producer.produce(
            self._topics.pull_requests,
            key=request.request_id.encode(),
            value=request.model_dump_json().encode(),
            partition=partition,
        )
        self._producer.flush(10)

    def _all_outcomes(self) -> list[Any]:
        return read_topic(self._broker, self._topics.completions, 10_000, timeout=3)

    def outcomes(self, request_id: str) -> list[Any]:
        """Return every outcome published for a request id so far, oldest first."""
        return [e for e in self._all_outcomes() if e.get("request_id") == request_id]

    def unanswered(self, requests: list[PullRequested]) -> list[str]:
        """Return the ids of those requests that have no outcome so far."""
        answered = {event.get("request_id") for event in self._all_outcomes()}
        return [r.request_id for r in requests if r.request_id not in answered]

    def publish_and_read(self, request: PullRequested, expected: int) -> list[Any]:
        """Publish a request, then return its outcomes once expected are in."""
        self.publish(request)
        wait_until(
            lambda: len(self.outcomes(request.request_id)) >= expected, timeout=30
        )
        return self.outcomes(request.request_id)


@pytest.mark.usefixtures("over_kafka")
def test_restricted_pull_arrives_value_by_value(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names)
    restriction = "subject_id in (2, 3) and session_idx < 2"

    result = (table().source & restriction).pull()

    assert result.counts == RowCounts(shared=4)
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


@pytest.mark.usefixtures("over_kafka")
def test_pulling_again_only_copies_the_new_rows(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 1").pull()

    result = (table().source & "subject_id <= 2").pull()

    assert result.counts == RowCounts(shared=3, already_shared=3)
    assert len(table()) == 6
    assert len(table.Trial()) == 6 * 4


def test_unreadable_and_unknown_requests_are_dead_lettered(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
) -> None:
    topics = Topics(over_kafka.topic_prefix)
    producer = Producer({"bootstrap.servers": endpoints.broker})
    stranger = PullRequested(
        request_id=f"stranger-{uuid.uuid4().hex}",
        link=LinkRef(
            source_host="db.invalid:3306",
            source_schema=schema_names.source,
            source_table="session",
            helper_schema=schema_names.helper,
            helper_table="outbound",
            destination_schema=schema_names.destination,
            destination_table="session",
        ),
        keys=[{"subject_id": 1, "session_idx": 0}],
    )
    junk_id = f"junk-{uuid.uuid4().hex}"
    producer.produce(topics.pull_requests, key=junk_id.encode(), value=b"{not json")
    producer.produce(
        topics.pull_requests,
        key=stranger.request_id.encode(),
        value=stranger.model_dump_json().encode(),
    )
    producer.flush(10)

    ours = {"{not json", stranger.model_dump_json()}
    reasons: dict[str, str] = {}

    def both_dead_lettered() -> bool:
        # Other tests of the session may have dead-lettered messages too.
        letters = read_topic(endpoints.broker, topics.dead_letters, 10_000, timeout=2)
        for letter in letters:
            if letter["payload"] in ours:
                reasons[letter["payload"]] = letter["reason"]
        return set(reasons) == ours

    assert wait_until(both_dead_lettered, timeout=30)
    assert "not valid JSON" in reasons["{not json"]
    # The publisher hears of it under the message's key, its request id.
    outcomes = read_topic(endpoints.broker, topics.completions, 10_000, timeout=3)
    rejected = [o for o in outcomes if o.get("request_id") == junk_id]
    assert rejected
    assert rejected[0]["type"] == "RequestRejected"
    assert "is not registered" in reasons[stranger.model_dump_json()]
    # The service is still alive and serving after the bad messages.
    table = linked_session(endpoints, schema_names)
    assert (table().source & "subject_id = 4").pull().counts.shared == 3


@pytest.mark.usefixtures("over_kafka")
def test_a_pull_of_a_row_with_a_wrong_key_is_rejected(
    endpoints: Endpoints, schema_names: SchemaNames, pipeline: SourcePipeline
) -> None:
    table = linked_session(endpoints, schema_names)
    executor = table._link_context.executor

    with pytest.raises(InvalidRequestError, match="missing session_idx"):
        executor.pull([{"subject_id": 1}], tqdm(disable=True))
    assert len(table()) == 0


def wait_until(condition: Any, timeout: float = 45.0) -> bool:
    """Poll a condition until it holds or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return bool(condition())


@pytest.mark.usefixtures("over_kafka")
def test_rows_left_mid_way_by_a_crash_are_redriven(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    (table().source & "subject_id = 1").pull()
    helper = f"`{schema_names.helper}`.`outbound`"
    # As if the pull-request service died right after activating a row ...
    source_admin.connection.query(
        f"INSERT INTO {helper} (subject_id, session_idx, process) VALUES (2, 0, 'PULL')"
    )
    # ... and the reconciler right after starting a deletion.
    source_admin.connection.query(
        f"UPDATE {helper} SET process = 'DELETE'"
        " WHERE subject_id = 1 AND session_idx = 0"
    )

    def helper_process(key: str) -> Any:
        row = source_admin.connection.query(
            f"SELECT process FROM {helper} WHERE {key}"
        ).fetchone()
        return None if row is None else row[0]

    pulled = "subject_id = 2 AND session_idx = 0"
    deleted = "subject_id = 1 AND session_idx = 0"
    assert wait_until(lambda: helper_process(pulled) == "NONE")
    assert wait_until(lambda: helper_process(deleted) is None)
    assert_rows_equal(
        fetch_sorted(pipeline.Session, pulled), fetch_sorted(table() & pulled)
    )
    assert len(table() & deleted) == 0
    assert len(table.Trial() & deleted) == 0


def test_a_request_published_twice_is_carried_out_once(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
) -> None:
    table = linked_session(endpoints, schema_names)
    topics = Topics(over_kafka.topic_prefix)
    request = PullRequested(
        request_id=f"twice-{uuid.uuid4().hex}",
        link=table._link_context.ref,
        keys=[{"subject_id": 3, "session_idx": 1}],
    )
    requests = Requests(endpoints.broker, topics)

    first = requests.publish_and_read(request, 1)
    (table() & "subject_id = 3").delete()  # the row goes back to Unshared
    second = requests.publish_and_read(request, 2)

    assert len(first) == 1
    assert first[0]["counts"]["shared"] == 1
    assert len(second) == 2
    assert second[1]["counts"] == first[0]["counts"]
    assert len(table()) == 0  # not pulled a second time

    # The same id for other rows is refused, not answered with the first outcome.
    different = request.model_copy(
        update={"keys": [{"subject_id": 3, "session_idx": 2}]}
    )
    third = requests.publish_and_read(different, 3)[2]
    assert third["type"] == "RequestRejected"
    assert "different request" in third["reason"]


def test_a_request_whose_start_was_cut_short_is_started_again_and_completes(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    source_admin: dj.Instance,
) -> None:
    table = linked_session(endpoints, schema_names)
    ref = table._link_context.ref
    topics = Topics(over_kafka.topic_prefix)
    keys: list[dict[str, Any]] = [
        {"subject_id": 2, "session_idx": index} for index in range(3)
    ]
    request = PullRequested(
        request_id=f"cut-short-{uuid.uuid4().hex}", link=ref, keys=keys
    )
    producer = Producer({"bootstrap.servers": endpoints.broker})
    # The request will lie at the end of partition 0 of the requests topic:
    # nothing else publishes requests while this test runs.
    watcher = Consumer({"bootstrap.servers": endpoints.broker, "group.id": "probe"})
    _low, end = watcher.get_watermark_offsets(
        TopicPartition(topics.pull_requests, 0), timeout=10
    )
    watcher.close()
    attempt = "stopped-mid-way"

    # What a pull-request worker did before it stopped: it activated the rows,
    # announced a start of two batches from that message, and handed over the
    # first batch only.
    helper = f"`{schema_names.helper}`.`outbound`"
    source_admin.connection.query(
        f"INSERT INTO {helper} (subject_id, session_idx, process)"
        " VALUES (2, 0, 'PULL'), (2, 1, 'PULL'), (2, 2, 'PULL')"
    )
    cut_short = PullStarted(
        request_id=request.request_id,
        link_id=ref.link_id,
        attempt=attempt,
        started_from=f"0/{end}",
        requested=3,
        batch_count=2,
        counts=RowCounts(),
        fingerprint=fingerprint(request),
    )
    first_batch = TransferRequested(
        request_id=request.request_id,
        link=ref,
        attempt=attempt,
        batch_index=0,
        batch_count=2,
        keys=keys[:2],
    )
    producer.produce(
        topics.pull_progress,
        key=request.request_id.encode(),
        value=cut_short.model_dump_json().encode(),
    )
    producer.produce(
        topics.transfers,
        key=f"{request.request_id}/0".encode(),
        value=first_batch.model_dump_json().encode(),
    )
    producer.flush(10)

    def shared(condition: str) -> int:
        (count,) = source_admin.connection.query(
            f"SELECT COUNT(*) FROM {helper} WHERE {condition} AND process = 'NONE'"
        ).fetchone()
        return int(count)

    assert wait_until(lambda: shared("subject_id = 2 AND session_idx < 2") == 2)

    # Kafka delivers the request message again once the worker is gone.
    requests = Requests(endpoints.broker, topics)
    requests.publish(request, partition=0)

    assert wait_until(lambda: bool(requests.outcomes(request.request_id)), 60), (
        "the request never completed:\n" + over_kafka.log_tail("pull_requests")
    )
    (outcome,) = requests.outcomes(request.request_id)
    counts = RowCounts.model_validate(outcome["counts"])
    assert outcome["type"] == "PullCompleted"
    # The first attempt's two rows count already shared; the third row is
    # shared by the new attempt, or by the reconciler's re-drive before it.
    assert counts.already_shared >= 2
    assert counts.shared + counts.already_shared == 3
    assert "delivered again before its pull completed" in over_kafka.log_tail(
        "pull_requests", lines=400
    )
    assert shared("subject_id = 2") == 3
    assert_rows_equal(
        fetch_sorted(pipeline.Session, "subject_id = 2"),
        fetch_sorted(table() & "subject_id = 2"),
    )


def test_an_outcome_is_forgotten_after_its_retention(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
) -> None:
    table = linked_session(endpoints, schema_names)
    topics = Topics(over_kafka.topic_prefix)
    request = PullRequested(
        request_id=f"forgotten-{uuid.uuid4().hex}",
        link=table._link_context.ref,
        keys=[{"subject_id": 4, "session_idx": 0}],
    )
    requests = Requests(endpoints.broker, topics)

    first = requests.publish_and_read(request, 1)
    (table() & "subject_id = 4").delete()  # the row goes back to Unshared
    # The sweep runs every tenth of the retention.
    time.sleep(OUTCOME_RETENTION * 1.1 + 2)
    second = requests.publish_and_read(request, 2)

    assert first[0]["counts"]["shared"] == 1
    assert len(second) == 2
    # Carried out anew: a new outcome, and the deleted row pulled again. An
    # answered repeat would bring the first outcome back and pull nothing.
    assert second[1]["completed_at"] != first[0]["completed_at"]
    assert second[1]["counts"]["shared"] == 1
    assert len(table() & "subject_id = 4") == 1


def test_requests_published_while_the_pull_request_service_is_down_are_carried_out(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
) -> None:
    table = linked_session(endpoints, schema_names)
    ref = table._link_context.ref
    topics = Topics(over_kafka.topic_prefix)
    requests = Requests(endpoints.broker, topics)
    partitions = range(partition_count(endpoints.broker, topics.pull_requests))
    session_keys = pipeline.Session().keys()
    assert len(session_keys) >= 2 * len(partitions)
    # One request per row and partition: a round before the service ends, so
    # that every partition has offsets committed and the table's changelog
    # has entries to read back, and a round while it is down.
    before, during = (
        [
            PullRequested(request_id=f"queued-{uuid.uuid4().hex}", link=ref, keys=[key])
            for key in keys
        ]
        for keys in (session_keys[: len(partitions)], session_keys[len(partitions) :])
    )
    for partition, request in zip(partitions, before, strict=True):
        requests.publish(request, partition)
    assert wait_until(lambda: not requests.unanswered(before), 30)

    kill_service(over_kafka, "pull_requests")
    try:
        for index, request in enumerate(during):
            requests.publish(request, index % len(partitions))
    finally:
        # Started again even if publishing failed: later tests need it.
        start_service(
            over_kafka, "pull_requests", "pull_requests", over_kafka.environment
        )

    assert wait_until(lambda: not requests.unanswered(during), 60), (
        f"{len(requests.unanswered(during))} of {len(during)} requests published"
        " while the service was down were never answered:\n"
        + over_kafka.log_tail("pull_requests", lines=80)
    )
    assert len(table()) == len(session_keys)
