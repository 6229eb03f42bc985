"""Contains what the services share: faust app, database thread, dead letters.

DataJoint and PyMySQL block, and a PyMySQL connection must stay on one thread,
so every service runs its database work on a single worker thread that owns
the connections; the faust agents await it. One worker thread per process is
enough: transfer work scales out by running more processes in the consumer
group, not more threads in one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import datajoint as dj
import faust
import pymysql
from faust.types import EventT
from pydantic import BaseModel, TypeAdapter, ValidationError

from link.adapters.gateway import LinkGateway
from link.adapters.kafka import MAX_MESSAGE_BYTES, Topics, ensure_topics
from link.adapters.servers import open_destination, open_source
from link.config import LinkSettings, load_settings
from link.domain.events import (
    EVENT_VERSIONS,
    REQUEST_VERSIONS,
    DeadLetter,
    LinkRef,
    RequestId,
    RequestRejected,
)
from link.errors import BrokerError, ConfigurationError, InvalidRequestError, LinkError
from link.registry import Registry
from services import end_with_configuration_error
from services.fetching import shorten_prefetch_backoff
from services.recovery import keep_messages_through_rebalances

logger = logging.getLogger(__name__)

shorten_prefetch_backoff()
keep_messages_through_rebalances()

T = TypeVar("T")

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
"""Seconds between attempts at a message whose handling failed for a passing cause."""


class Databases:
    """Owns the service's database connections, on its one worker thread."""

    def __init__(self, settings: LinkSettings, registry: Registry) -> None:
        """Start the worker thread, which connects ahead to the registry's servers."""
        self._settings = settings
        self._registry = registry
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db")
        self._sources: dict[str, dj.Instance] = {}
        self._destination: dj.Instance | None = None
        self._gateways: dict[str, LinkGateway] = {}
        # The first request need not wait for connections; one that comes
        # sooner queues behind this on the same thread.
        self._executor.submit(self._connect_ahead)

    def _connect_ahead(self) -> None:
        """Open the destination and every registered source server, if they answer.

        A server that does not answer now is connected to on first use, when
        its failure is the request's (and retried like any other).
        """
        addresses = sorted({entry.address for entry in self._registry.entries})
        # Any failure here is only logged: the request that needs the server
        # meets it again and handles it (retry, dead letter) as usual.
        try:
            self.destination()
        except Exception as error:
            logger.warning("destination server not reachable yet: %s", error)
        for address in addresses:
            try:
                self._source(address)
            except Exception as error:
                logger.warning("source server %s not reachable yet: %s", address, error)

    def open_servers(self) -> list[str]:
        """Return the addresses of the source servers connected so far, sorted."""
        return sorted(self._sources)

    def _source(self, address: str) -> dj.Instance:
        source = self._sources.get(address)
        if source is None:
            source = open_source(address, self._settings)
            self._sources[address] = source
        return source

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking function on the worker thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def destination(self) -> dj.Instance:
        """Return the destination connection; call on the worker thread only."""
        if self._destination is None:
            self._destination = open_destination()
        return self._destination

    def gateway(self, link: LinkRef | str) -> LinkGateway:
        """Return the gateway of a registered link; call on the worker thread only."""
        ref, address = self._registry.resolve(link)
        identity = ref.model_dump_json()
        gateway = self._gateways.get(identity)
        if gateway is None:
            gateway = LinkGateway(ref, self._source(address), self.destination())
            self._gateways[identity] = gateway
        return gateway


_TRANSIENT_SERVER_ERRORS = {
    1205,  # lock wait timeout
    1213,  # deadlock, rolled back
    2003,  # cannot connect
    2006,  # server has gone away
    2013,  # lost connection during query
}


def is_transient(error: BaseException) -> bool:
    """Return whether a failure may pass by itself, so that a retry is worth it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, BrokerError | ConnectionError | TimeoutError):
            return True
        if isinstance(seen, dj.errors.LostConnectionError):
            return True
        if isinstance(seen, pymysql.err.OperationalError) and seen.args:
            return seen.args[0] in _TRANSIENT_SERVER_ERRORS
        seen = seen.__cause__ or seen.__context__
    return False


def describe(error: BaseException) -> str:
    """Return a reason for a requester: the link's own errors speak for themselves."""
    if isinstance(error, LinkError):
        return str(error)
    if isinstance(error, dj.errors.MissingTableError) and error.args:
        return (
            f"{type(error).__name__}: {error.args[0]}. A link's tables are made"
            " when it is declared with @link(...) in Python; the services make none."
        )
    if isinstance(error, dj.errors.DataJointError) and error.args:
        return f"{type(error).__name__}: {error.args[0]}"
    return f"{type(error).__name__}: {error}"


def parse(model: type[BaseModel], payload: bytes | None, limit: int) -> Any:
    """Parse a message, raising InvalidRequestError with a readable reason.

    A request of an older schema version is read with that version's model
    and upcast; a version the service does not know is refused, never guessed.
    """
    if payload is None:
        raise InvalidRequestError("The message has no value.")
    if len(payload) > limit:
        raise InvalidRequestError(
            f"The message is {len(payload)} bytes, over the {limit} byte limit"
            " (LINK_MAX_REQUEST_BYTES): split its keys over several requests."
        )
    try:
        document = json.loads(payload)
    except ValueError as error:
        raise InvalidRequestError(f"The message is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidRequestError("The message is not a JSON object.")
    versions = REQUEST_VERSIONS.get(model.__name__) or EVENT_VERSIONS.get(
        model.__name__
    )
    if versions is not None:
        version = document.get("schema_version", max(versions))
        if version not in versions:
            readable = ", ".join(str(known) for known in versions)
            raise InvalidRequestError(
                f"Schema version {version!r} of {model.__name__} is not one this"
                f" service reads (it reads {readable})."
            )
        model = versions[version]
    elif document.get("schema_version", 1) != 1:
        raise InvalidRequestError(
            f"Schema version {document.get('schema_version')!r} of"
            f" {model.__name__} is not one this service reads (it reads 1)."
        )
    try:
        parsed = model.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'message'}:"
            f" {issue['msg']}"
            for issue in error.errors()[:5]
        )
        raise InvalidRequestError(
            f"The message is not a valid {model.__name__}: {problems}"
        ) from None
    upcast = getattr(parsed, "upcast", None)
    return upcast() if upcast is not None else parsed


DEAD_LETTER_PAYLOAD_BYTES = 64 * 1024
"""Bytes of an unprocessable message kept in its dead letter."""

_request_id: TypeAdapter[str] = TypeAdapter(RequestId)


def request_id_of_key(key: object) -> str | None:
    """Return a message's key when it can be a request id."""
    if not isinstance(key, bytes):
        return None
    text = key.decode("utf-8", errors="replace")
    try:
        return _request_id.validate_python(text)
    except ValidationError:
        return None


def request_id_of(payload: bytes | None) -> str | None:
    """Return the request id of a message that could not be parsed, if readable."""
    try:
        document = json.loads(payload or b"")
    except ValueError:
        return None
    request_id = document.get("request_id") if isinstance(document, dict) else None
    return request_id if isinstance(request_id, str) and request_id else None


class Service:
    """One link service: its faust app, settings, topics and databases."""

    def __init__(self, name: str, settings: LinkSettings) -> None:
        """Create the faust app; nothing connects before the worker starts."""
        if settings.broker is None:
            raise ConfigurationError(
                "LINK_BROKER is not set, or empty: the services need Kafka."
            )
        self.name = name
        self.settings = settings
        self.broker = settings.broker
        self.topics = Topics(settings.topic_prefix)
        if settings.registry is None:
            raise ConfigurationError(
                "LINK_REGISTRY is not set: the services need the operators' file of"
                " accepted links (see link/registry.py)."
            )
        self.registry = Registry.from_file(settings.registry)
        settings.source_credentials()  # missing ones are named now, not per request
        self.databases = self.new_databases()
        self.app = faust.App(
            f"{settings.topic_prefix}-{name}",
            broker=f"kafka://{settings.broker}",
            value_serializer="raw",
            key_serializer="raw",
            web_enabled=False,
            topic_disable_leader=True,
            topic_partitions=settings.topic_partitions,
            consumer_auto_offset_reset="earliest",
            producer_max_request_size=MAX_MESSAGE_BYTES,
            # faust waits 60 s for a silent worker: a killed transfer worker's
            # batches would wait that long before another worker takes them.
            broker_session_timeout=settings.session_timeout,
            broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
            store="memory://",
            # faust makes a data folder per app even for in-memory tables; keep
            # it out of the working directory.
            datadir=str(Path(tempfile.gettempdir()) / "datajoint-link-faust"),
        )
        self.changelogs: list[str] = []
        self.dead_letters = self.topic(self.topics.dead_letters)
        self.completions = self.topic(self.topics.completions)

    def new_databases(self) -> Databases:
        """Return a database thread with connections of its own."""
        return Databases(self.settings, self.registry)

    def table(self, name: str) -> faust.types.TableT[str, Any]:
        """Return a faust table partitioned like the link's topics.

        Its changelog is partitioned by key, as the services' producers
        partition the topics: a key's entry is where its events are, and it
        can be removed outside of an event too (see the pull-request service's
        sweep of old outcomes).
        """
        self.changelogs.append(f"{self.app.conf.id}-{name}-changelog")
        return self.app.Table(
            name,
            default=None,
            partitions=self.settings.topic_partitions,
            use_partitioner=True,
        )

    def topic(self, name: str) -> faust.TopicT:
        """Return a faust topic of raw bytes, keyed by a string."""
        return self.app.topic(name, key_type=bytes, value_type=bytes)

    async def send(self, topic: faust.TopicT, key: str, message: BaseModel) -> None:
        """Publish one message as JSON and wait until Kafka has it."""
        await topic.send(key=key.encode(), value=message.model_dump_json().encode())

    async def reject(self, event: EventT[bytes], reason: str) -> None:
        """Dead-letter a message and tell its publisher, keeping the service alive."""
        request_id = await self.dead_letter(event, reason)
        await self.send(
            self.completions,
            request_id or "unknown",
            RequestRejected(request_id=request_id, reason=reason),
        )

    async def dead_letter(self, event: EventT[bytes], reason: str) -> str | None:
        """Keep a message that could not be processed, with the reason.

        Returns the request id: the message's own, or else its Kafka key when
        that is a valid request id, so that the publisher hears of it.
        """
        message = event.message
        payload = message.value if isinstance(message.value, bytes) else b""
        request_id = request_id_of(payload) or request_id_of_key(message.key)
        text = payload[:DEAD_LETTER_PAYLOAD_BYTES].decode("utf-8", errors="replace")
        await self.send(
            self.dead_letters,
            request_id or f"{message.topic}/{message.partition}/{message.offset}",
            DeadLetter(
                service=self.name,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                payload=text,
                payload_bytes=len(payload),
                reason=reason,
            ),
        )
        logger.warning(
            "%s dead-lettered the message at %s/%s/%s (request %s): %s",
            self.name,
            message.topic,
            message.partition,
            message.offset,
            request_id,
            reason,
        )
        return request_id

    async def handle(
        self,
        event: EventT[bytes],
        handler: Callable[[], Awaitable[None]],
        on_give_up: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """Run a handler with the service's error policy.

        A failure that a retry cannot cure (a request that cannot be carried
        out as written, a missing table, a row the destination refuses) is
        settled at once. A passing failure (a server restarting, a lost
        connection) is retried with growing pauses. A settled failure is
        reported by on_give_up (or, without it, rejected to the publisher) and
        the message is dead-lettered, so that the partition moves on and
        nothing is silently dropped.
        """
        message = event.message
        request_id = request_id_of(
            message.value if isinstance(message.value, bytes) else b""
        )
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                await handler()
                return
            except InvalidRequestError as error:
                await self.reject(event, str(error))
                return
            except Exception as error:
                reason = describe(error)
                if delay is not None and is_transient(error):
                    logger.warning(
                        "%s request %s: attempt %d failed, retrying in %.0f s: %s",
                        self.name,
                        request_id,
                        attempt + 1,
                        delay,
                        reason,
                    )
                    await asyncio.sleep(delay)
                    continue
                if not isinstance(error, LinkError):
                    logger.error(
                        "%s request %s failed: %s",
                        self.name,
                        request_id,
                        reason,
                        exc_info=error,
                    )
                if on_give_up is not None:
                    await on_give_up(reason)
                    await self.dead_letter(event, reason)
                else:
                    await self.reject(event, reason)
                return

    def run(self) -> None:
        """Create the link's topics, then run the faust worker until stopped."""
        started = time.monotonic()
        # faust would create a table's changelog itself, but then reads its
        # partitions before the broker's metadata has them and fails the
        # table's first write; creating it beforehand avoids that race.
        ensure_topics(
            self.broker,
            self.topics.all(),
            self.settings.topic_partitions,
            compacted=self.changelogs,
        )
        logger.info(
            "%s: topics ready on %s in %.1f s",
            self.name,
            self.broker,
            time.monotonic() - started,
        )
        argv = sys.argv[1:] or ["worker", "--without-web", "--loglevel", "info"]
        sys.argv = [sys.argv[0], *argv]
        self.app.main()


def serve(program: str, create: Callable[[LinkSettings], Service]) -> None:
    """Build a service from the environment and run it until it is stopped.

    A bad or missing setting ends the process with one line on stderr that
    names the variable, instead of a traceback.
    """
    try:
        service = create(load_settings())
    except ConfigurationError as error:
        end_with_configuration_error(program, str(error))
    service.run()
