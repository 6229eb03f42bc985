"""Tests of the library's Kafka clients against the broker, without the services."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import secrets
import threading
import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka.admin import AdminClient

from link.adapters import kafka
from link.adapters.kafka import Publisher, RequestListener, Topics, ensure_topics
from link.config import LinkSettings
from link.domain.events import LinkRef, PullCompleted, RowCounts
from link.errors import BrokerError
from link.executors import KafkaClients, KafkaExecutor
from services import runtime  # noqa: F401  (shortens the prefetch backoff)
from services.fetching import PREFETCH_BACKOFF
from tests.servers import Endpoints


@pytest.fixture
def fresh_topics(endpoints: Endpoints) -> Iterator[Topics]:
    """Return topic names nobody has used; the topics are deleted afterwards."""
    topics = Topics(f"fresh-{secrets.token_hex(4)}")
    yield topics
    admin = AdminClient({"bootstrap.servers": endpoints.broker})
    existing = set(admin.list_topics(timeout=15).topics)
    doomed = [name for name in topics.all() if name in existing]
    if doomed:
        for future in admin.delete_topics(doomed).values():
            future.result()


def _completion(request_id: str) -> PullCompleted:
    return PullCompleted(
        request_id=request_id,
        link_id="test",
        requested=1,
        counts=RowCounts(shared=1),
    )


def test_a_listener_opens_on_topics_created_a_moment_ago(
    endpoints: Endpoints, fresh_topics: Topics
) -> None:
    # Just after creation the partitions have no leader yet: asking for their
    # end offsets fails at first, and the listener has to wait that out.
    ensure_topics(endpoints.broker, fresh_topics.all(), partitions=6)
    first = RequestListener(endpoints.broker, [fresh_topics.completions])
    publisher = Publisher(endpoints.broker, warm_topics=[fresh_topics.completions])
    publisher.publish(fresh_topics.completions, "early", _completion("early"))
    publisher.flush()
    second = RequestListener(endpoints.broker, [fresh_topics.completions])
    publisher.publish(fresh_topics.completions, "late", _completion("late"))
    publisher.flush()
    try:
        heard_first = list(first.events({"early", "late"}, timeout=3.0))
        heard_second = list(second.events({"early", "late"}, timeout=1.0))
    finally:
        first.close()
        second.close()

    # A listener hears what was published after it opened, and nothing older.
    assert sorted(str(event.request_id) for event in heard_first) == ["early", "late"]
    assert [event.request_id for event in heard_second] == ["late"]


def test_a_listener_told_how_long_to_listen_stops_while_events_keep_coming(
    endpoints: Endpoints, fresh_topics: Topics
) -> None:
    ensure_topics(endpoints.broker, fresh_topics.all(), partitions=1)
    listener = RequestListener(endpoints.broker, [fresh_topics.completions])
    publisher = Publisher(endpoints.broker, warm_topics=[fresh_topics.completions])
    stop = threading.Event()

    def publish_steadily() -> None:
        # One event every 10 ms for up to 5 s: never 0.2 s of quiet.
        for _ in range(500):
            if stop.is_set():
                break
            publisher.publish(fresh_topics.completions, "busy", _completion("busy"))
            publisher.flush()
            time.sleep(0.01)

    publishing = threading.Thread(target=publish_steadily)
    publishing.start()
    try:
        time.sleep(0.3)
        began = time.monotonic()
        heard = list(listener.events({"busy"}, timeout=0.2, longest=0.3))
        listened = time.monotonic() - began
    finally:
        stop.set()
        publishing.join()
        listener.close()

    assert heard, "the listener heard none of the steady events"
    assert listened < 2.0, f"listened {listened:.1f} s while told 0.3 s at most"


def test_a_broker_that_cannot_be_reached_fails_the_request_not_the_connect_ahead(
    endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka, "BROKER_TIMEOUT", 1.0)
    ref = LinkRef(
        source_host=endpoints.source_host,
        source_schema="src_unreachable",
        source_table="row",
        helper_schema="helper_unreachable",
        helper_table="outbound",
        destination_schema="dst_unreachable",
        destination_table="row",
    )
    # Port 9 (discard) has no Kafka on it: librdkafka fails fast there.
    executor = KafkaExecutor(ref, LinkSettings(), broker="127.0.0.1:9")
    executor.connect_ahead()  # returns at once, whatever the broker does

    with pytest.raises(BrokerError, match=re.escape("127.0.0.1:9")):
        executor.delete([{"row_id": 1}])


def _publish_one(clients: KafkaClients, topic: str) -> None:
    publisher, _listener = clients.get()
    publisher.publish(topic, "from-the-child", _completion("from-the-child"))
    publisher.flush(timeout=5.0)  # raises BrokerError when nothing is delivered


@pytest.mark.parametrize("opened", ["open", "opening"])
def test_clients_opened_before_a_fork_are_opened_anew_in_the_child(
    endpoints: Endpoints, fresh_topics: Topics, opened: str
) -> None:
    # The decorator opens the clients at import time, typically just before a
    # worker pool forks. The parent's librdkafka threads do not survive the
    # fork: a child using its copies would never deliver, and one destroying
    # them aborts. The clients object holds the only reference to them here,
    # as it does in a user's process.
    clients = KafkaClients(
        LinkSettings(topic_prefix=fresh_topics.prefix), endpoints.broker
    )
    clients.open_in_background()
    if opened == "open":
        parent_publisher = id(clients.get()[0])

    child = multiprocessing.get_context("fork").Process(
        target=_publish_one, args=(clients, fresh_topics.completions)
    )
    child.start()
    child.join(timeout=30)

    assert child.exitcode == 0, "the child could not publish with its clients"
    if opened == "open":
        assert id(clients.get()[0]) == parent_publisher, "the parent keeps its own"


def test_the_services_consumers_fetch_with_the_short_prefetch_backoff(
    endpoints: Endpoints,
) -> None:
    # Importing the services' runtime (above) shortened the backoff of every
    # consumer started afterwards, such as those that faust builds.
    async def started_backoff() -> float:
        consumer = AIOKafkaConsumer(bootstrap_servers=endpoints.broker)
        await consumer.start()
        try:
            return float(consumer._fetcher._prefetch_backoff)
        finally:
            # aiokafka's stop() at once after start() cancels a task of its
            # own that start() began, and raises CancelledError: let it run.
            await asyncio.sleep(0.1)
            await consumer.stop()

    assert asyncio.run(started_backoff()) == PREFETCH_BACKOFF
