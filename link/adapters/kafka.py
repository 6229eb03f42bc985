"""Contains the link's Kafka topics, their creation, and publishing from Python.

The library publishes with confluent-kafka, the services consume with faust
(aiokafka). Both must put a key on the same partition, because the pull-request
service keeps per-request bookkeeping partitioned by request id: the producer
here therefore uses the Java client's murmur2 partitioner, which is also
aiokafka's default.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
    OffsetSpec,
)
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from link.domain.events import (
    EVENT_VERSIONS,
    BatchTransferred,
    DeletionCompleted,
    PullCompleted,
    PullStarted,
    RequestRejected,
)
from link.errors import BrokerError, UnsupportedVersionError

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest message the link publishes or accepts; the topics are created with it."""


@dataclass(frozen=True)
class Topics:
    """The names of the link's topics, all sharing one prefix."""

    prefix: str = "link"

    @property
    def pull_requests(self) -> str:
        """Return the topic of pull requests, keyed by request id."""
        return f"{self.prefix}.pull-requests"

    @property
    def transfers(self) -> str:
        """Return the topic of transfer batches, keyed by request id and batch."""
        return f"{self.prefix}.transfers"

    @property
    def pull_progress(self) -> str:
        """Return the topic of pull progress events, keyed by request id."""
        return f"{self.prefix}.pull-progress"

    @property
    def completions(self) -> str:
        """Return the topic of completions and rejections, keyed by request id."""
        return f"{self.prefix}.completions"

    @property
    def deletion_requests(self) -> str:
        """Return the topic of deletion requests, keyed by request id."""
        return f"{self.prefix}.deletion-requests"

    @property
    def dead_letters(self) -> str:
        """Return the topic of messages that could not be processed."""
        return f"{self.prefix}.dead-letters"

    def all(self) -> tuple[str, ...]:
        """Return every topic the link uses."""
        return (
            self.pull_requests,
            self.transfers,
            self.pull_progress,
            self.completions,
            self.deletion_requests,
            self.dead_letters,
        )


BROKER_TIMEOUT = 15.0
"""Seconds to wait for the broker's answer to a question about topics."""

LISTENER_START_TIMEOUT = 15.0
"""Seconds a new listener waits for the partitions of new topics to get leaders."""

_LEADERLESS_PARTITION = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
}
"""Errors of a partition that has no leader yet, as just after topic creation;
librdkafka does not mark them retriable."""

EAGER_CONNECTIONS = {"enable.sparse.connections": False}
"""librdkafka's sparse connections hold a new client's first request back
about 50 ms; a single-row pull opens three clients."""


class TopicAdmin:
    """Asks the broker about the link's topics: creates them, reads their ends."""

    def __init__(self, broker: str) -> None:
        """Open an admin client (it connects on its first question)."""
        self._broker = broker
        config: dict[str, Any] = {
            "bootstrap.servers": broker,
            **EAGER_CONNECTIONS,
            "logger": logger,
            "log_level": 2,
        }
        self._admin = AdminClient(config)

    def _metadata(self) -> dict[str, Any]:
        try:
            return dict(self._admin.list_topics(timeout=BROKER_TIMEOUT).topics)
        except KafkaException as error:
            raise BrokerError(
                f"Kafka at {self._broker} did not answer: {error}"
            ) from error

    def ensure(
        self, topics: Iterable[str], partitions: int, *, compacted: Iterable[str] = ()
    ) -> None:
        """Create the topics that do not exist yet; existing ones stay as they are.

        Topics named in compacted keep only the latest message per key: they
        hold the services' own state (faust table changelogs).
        """
        compacted = set(compacted)
        topics = [*topics, *sorted(compacted)]
        existing = self._metadata()
        missing = [topic for topic in topics if topic not in existing]
        if not missing:
            return
        new_topics = [
            NewTopic(
                topic,
                num_partitions=partitions,
                replication_factor=1,
                config={
                    "max.message.bytes": str(MAX_MESSAGE_BYTES),
                    **({"cleanup.policy": "compact"} if topic in compacted else {}),
                },
            )
            for topic in missing
        ]
        for topic, future in self._admin.create_topics(new_topics).items():
            try:
                future.result()
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BrokerError(
                        f"Could not create topic {topic}: {error}"
                    ) from error
        logger.info(
            "created topics %s with %d partitions", ", ".join(missing), partitions
        )

    def end_offsets(self, topics: Sequence[str]) -> list[TopicPartition]:
        """Return every partition of the topics at its current end offset.

        One request for all partitions. Just after a topic is created its
        partitions have no leader for a moment and the request fails with an
        error that librdkafka does not mark retriable: it is asked again.
        """
        deadline = time.monotonic() + LISTENER_START_TIMEOUT
        while True:
            try:
                return self._end_offsets(topics)
            except KafkaException as error:
                kafka_error = error.args[0]
                passing = (
                    kafka_error.retriable()
                    or kafka_error.code() in _LEADERLESS_PARTITION
                )
                if not passing or time.monotonic() > deadline:
                    raise BrokerError(
                        f"Kafka at {self._broker} did not give the end offsets of"
                        f" {', '.join(topics)}: {error}"
                    ) from error
            time.sleep(0.05)

    def _end_offsets(self, topics: Sequence[str]) -> list[TopicPartition]:
        metadata = self._metadata()
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        wanted: dict[TopicPartition, OffsetSpec] = {}
        for topic in topics:
            found = metadata.get(topic)
            if found is None:
                # A topic created a moment ago may not be in the metadata yet.
                raise KafkaException(
                    KafkaError(KafkaError._UNKNOWN_TOPIC, f"no topic {topic} (yet)")
                )
            if found.error is not None:
                raise KafkaException(found.error)
            for partition in found.partitions:
                wanted[TopicPartition(topic, partition)] = latest
        futures = self._admin.list_offsets(wanted, request_timeout=BROKER_TIMEOUT)
        return [
            TopicPartition(partition.topic, partition.partition, future.result().offset)
            for partition, future in futures.items()
        ]


def ensure_topics(
    broker: str,
    topics: Iterable[str],
    partitions: int,
    *,
    compacted: Iterable[str] = (),
) -> None:
    """Create the topics that do not exist yet (see TopicAdmin.ensure)."""
    TopicAdmin(broker).ensure(topics, partitions, compacted=compacted)


class Publisher:
    """Publishes link messages as JSON, keyed, and waits until Kafka has them.

    The producer is not idempotent: librdkafka's idempotent producer holds its
    first delivery back about half a second, which a single-row pull would
    mostly spend waiting. A retry may then store a request twice; the
    services carry out a request id once, so the copy changes nothing.
    """

    def __init__(self, broker: str, warm_topics: Sequence[str] = ()) -> None:
        """Connect a producer to the broker.

        The metadata of warm_topics is fetched at once: otherwise the first
        message to each waits for it.
        """
        self._broker = broker
        self._producer = Producer(
            {
                "bootstrap.servers": broker,
                **EAGER_CONNECTIONS,
                "partitioner": "murmur2_random",
                "acks": "all",
                "message.max.bytes": MAX_MESSAGE_BYTES,
                "logger": logger,
                # Connection failures surface as BrokerError; librdkafka would
                # otherwise log each reconnect attempt, many per second.
                "log_level": 2,
            }
        )
        for topic in warm_topics:
            try:
                self._producer.list_topics(topic, timeout=BROKER_TIMEOUT)
            except KafkaException as error:
                raise BrokerError(
                    f"Kafka at {broker} did not answer: {error}"
                ) from error

    def publish(self, topic: str, key: str, message: BaseModel) -> None:
        """Queue one message; call flush() to wait for its delivery."""
        self.publish_serialized(topic, key, message.model_dump_json().encode())

    def publish_serialized(self, topic: str, key: str, payload: bytes) -> None:
        """Queue one message already serialized as JSON; see publish()."""
        try:
            self._producer.produce(topic, key=key.encode(), value=payload)
        except BufferError:
            self.flush()
            self._producer.produce(topic, key=key.encode(), value=payload)
        except KafkaException as error:
            raise BrokerError(
                f"Kafka refused a message for {topic}: {error}"
            ) from error
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued message is delivered, or raise."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise BrokerError(
                f"{remaining} message(s) were not delivered to Kafka at"
                f" {self._broker} within {timeout:.0f} s"
            )


RequestEvent = (
    PullCompleted | DeletionCompleted | RequestRejected | PullStarted | BatchTransferred
)
_event_adapter: TypeAdapter[RequestEvent] = TypeAdapter(
    Annotated[RequestEvent, Field(discriminator="type")]
)
_EVENT_TYPES = frozenset(
    model.model_fields["type"].default for model in get_args(RequestEvent)
)


class _Envelope(BaseModel):
    """What an event says of itself whatever its version: type, version, request."""

    type: str
    schema_version: int = 1
    request_id: str | None = None


def read_event(payload: bytes) -> RequestEvent:
    """Return the event that a message holds, an older version read as the current.

    Raises ValidationError when the message is not an event of a request, and
    UnsupportedVersionError when it is one of a version this release does not
    read (a newer service's): its meaning is never guessed at.
    """
    try:
        return _event_adapter.validate_json(payload)
    except ValidationError:
        envelope = _Envelope.model_validate_json(payload)
        versions = EVENT_VERSIONS.get(envelope.type, {})
        readable = list(versions) or [1]
        if envelope.type not in _EVENT_TYPES or envelope.schema_version == max(
            readable
        ):
            raise
    if envelope.schema_version not in versions:
        raise UnsupportedVersionError(
            f"{envelope.type} of request {envelope.request_id} is at schema"
            f" version {envelope.schema_version}, which this release of"
            " datajoint-link does not read (it reads"
            f" {', '.join(map(str, readable))}): upgrade datajoint-link to read"
            " the services' answers.",
            envelope.request_id,
        )
    older = versions[envelope.schema_version].model_validate_json(payload)
    upcast = getattr(older, "upcast", None)
    return _event_adapter.validate_python(older if upcast is None else upcast())


class RequestListener:
    """Listens for the events of chosen requests: their progress and outcome.

    It is opened before the requests are published and starts at each
    partition's current end, so that no event published afterwards is missed
    and no older event is read.
    """

    def __init__(
        self, broker: str, topics: Sequence[str], admin: TopicAdmin | None = None
    ) -> None:
        """Assign every partition of the topics at its current end offset."""
        start = (admin or TopicAdmin(broker)).end_offsets(topics)
        self._consumer = Consumer(
            {
                "bootstrap.servers": broker,
                **EAGER_CONNECTIONS,
                "group.id": "link-request-listener",
                "enable.auto.commit": False,
                "logger": logger,
                # Connection failures surface as BrokerError; librdkafka would
                # otherwise log each reconnect attempt, many per second.
                "log_level": 2,
            }
        )
        self._consumer.assign(start)
        self._mailbox: dict[str, list[RequestEvent]] = {}

    def expect(self, request_ids: Iterable[str]) -> None:
        """Keep the events of these requests until they are asked for."""
        for request_id in request_ids:
            self._mailbox.setdefault(request_id, [])

    def forget(self, request_id: str) -> None:
        """Stop keeping events of a request whose outcome is known."""
        self._mailbox.pop(request_id, None)

    def events(
        self, request_ids: set[str], timeout: float, longest: float | None = None
    ) -> Iterator[RequestEvent]:
        """Yield the events of the requests until none arrives for timeout seconds.

        With longest, it stops after that many seconds in all, however busy
        the requests are. Events of other expected requests are kept for
        them; events of requests nobody expects are dropped.
        """
        for request_id in request_ids:
            kept = self._mailbox.get(request_id, [])
            while kept:
                yield kept.pop(0)
        deadline = time.monotonic() + timeout
        end = math.inf if longest is None else time.monotonic() + longest
        while (remaining := min(deadline, end) - time.monotonic()) > 0:
            message = self._consumer.poll(min(remaining, 0.5))
            if message is None:
                continue
            if message.error() is not None:
                logger.warning("request listener: %s", message.error())
                continue
            try:
                event = read_event(message.value() or b"")
            except UnsupportedVersionError as error:
                if error.request_id in request_ids:
                    raise
                logger.warning(
                    "ignored an event at %s/%s/%s: %s",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    error,
                )
                continue
            except ValidationError:
                logger.warning(
                    "ignored an unreadable event at %s/%s/%s",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                )
                continue
            if event.request_id in request_ids:
                deadline = time.monotonic() + timeout
                yield event
            elif event.request_id in self._mailbox:
                self._mailbox[event.request_id].append(event)

    def close(self) -> None:
        """Leave the topics."""
        self._consumer.close()
