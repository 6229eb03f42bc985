"""Contains the two ways a link's requests are carried out: in-process or over Kafka.

Without LINK_BROKER the library runs the services' own handlers in the user's
process (embedded mode): one user needs no broker, and the rows go through the
very same lifecycle steps. With LINK_BROKER it publishes requests and waits for
the services' completion events.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import datajoint as dj
from tqdm import tqdm

from link.adapters.gateway import LinkGateway
from link.adapters.kafka import (
    BROKER_TIMEOUT,
    Publisher,
    RequestListener,
    TopicAdmin,
    Topics,
)
from link.config import LinkSettings
from link.domain.events import (
    BatchTransferred,
    DeletionCompleted,
    DeletionCounts,
    DeletionRequested,
    LinkRef,
    PrimaryKey,
    PullCompleted,
    PullRequested,
    PullStarted,
    RequestRejected,
    RowCounts,
    RowFailure,
)
from link.domain.progress import PullProgress
from link.errors import InvalidRequestError, RequestTimeoutError
from link.service_layer.deletions import delete_rows
from link.service_layer.pulls import start_pull, transfer_batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullResult:
    """What a finished pull did, summed over its requests."""

    request_ids: tuple[str, ...]
    requested: int
    counts: RowCounts
    failures: list[RowFailure] = field(default_factory=list)


@dataclass(frozen=True)
class DeletionResult:
    """What a finished deletion did, summed over its requests."""

    request_ids: tuple[str, ...]
    requested: int
    counts: DeletionCounts
    failures: list[RowFailure] = field(default_factory=list)


class Executor(Protocol):
    """Carries a link's pulls and deletions out."""

    def connect_ahead(self) -> None:
        """Start any connecting the next request needs, without waiting for it."""

    def pull(self, keys: Sequence[PrimaryKey], progress: tqdm[Any]) -> PullResult:
        """Pull the rows and return what happened to them."""

    def delete(self, keys: Sequence[PrimaryKey]) -> DeletionResult:
        """Delete the rows from the destination and return what happened."""


def _request_ids() -> Iterator[str]:
    """Yield unique request ids, one publication's sharing a common stem."""
    stem = uuid.uuid4().hex
    return (f"{stem}-{index}" for index in itertools.count())


Request = PullRequested | DeletionRequested


def requests_within(
    chunks: Sequence[list[PrimaryKey]],
    build: Callable[[str, list[PrimaryKey]], Request],
    max_bytes: int,
) -> list[tuple[Request, bytes]]:
    """Build one request per chunk, halving any whose message exceeds max_bytes.

    The services refuse a request over LINK_MAX_REQUEST_BYTES: long keys (a
    varchar(255) key, say) reach that before the count of keys does. Each
    request comes with its serialized message, which is what gets published.
    A single key over the limit stays whole, for the services to refuse by name.
    """
    ids = _request_ids()
    built: list[tuple[Request, bytes]] = []
    waiting = deque(chunks)
    while waiting:
        chunk = waiting.popleft()
        request = build(next(ids), chunk)
        message = request.model_dump_json().encode()
        if len(message) > max_bytes and len(chunk) > 1:
            # The unused id is dropped: ids need to be unique, not contiguous.
            half = len(chunk) // 2
            waiting.extendleft([chunk[half:], chunk[:half]])
            continue
        built.append((request, message))
    return built


def _slices(keys: Sequence[PrimaryKey], size: int) -> list[list[PrimaryKey]]:
    return growing_slices(keys, size, size)


def growing_slices(
    keys: Sequence[PrimaryKey], first: int, largest: int
) -> list[list[PrimaryKey]]:
    """Cut keys into slices that double in size from first up to largest.

    The transfer workers can begin on the first slice's single batch while
    the pull-request service is still activating the larger ones behind it.
    """
    slices: list[list[PrimaryKey]] = []
    start, size = 0, max(1, min(first, largest))
    while start < len(keys):
        slices.append(list(keys[start : start + size]))
        start += size
        size = min(size * 2, largest)
    return slices


def _failures(
    outcomes: Sequence[PullCompleted | DeletionCompleted],
) -> list[RowFailure]:
    return [failure for outcome in outcomes for failure in outcome.failures]


def _sum_pulls(outcomes: Sequence[PullCompleted], requested: int) -> PullResult:
    return PullResult(
        request_ids=tuple(outcome.request_id for outcome in outcomes),
        requested=requested,
        counts=sum((outcome.counts for outcome in outcomes), RowCounts()),
        failures=_failures(outcomes),
    )


def _sum_deletions(
    outcomes: Sequence[DeletionCompleted], requested: int
) -> DeletionResult:
    return DeletionResult(
        request_ids=tuple(outcome.request_id for outcome in outcomes),
        requested=requested,
        counts=sum((outcome.counts for outcome in outcomes), DeletionCounts()),
        failures=_failures(outcomes),
    )


class EmbeddedExecutor:
    """Runs the services' handlers in the user's process, on the user's connections."""

    def __init__(
        self,
        ref: LinkRef,
        source: dj.Instance,
        destination: dj.Instance,
        settings: LinkSettings,
    ) -> None:
        """Keep what the handlers need; the gateway is built on first use."""
        self._ref = ref
        self._source = source
        self._destination = destination
        self._settings = settings
        self._gateway: LinkGateway | None = None

    def connect_ahead(self) -> None:
        """Do nothing: the user's database connections are open already."""

    @property
    def gateway(self) -> LinkGateway:
        """Return the gateway over the user's own connections."""
        if self._gateway is None:
            self._gateway = LinkGateway(self._ref, self._source, self._destination)
        return self._gateway

    def pull(self, keys: Sequence[PrimaryKey], progress: tqdm[Any]) -> PullResult:
        """Start and transfer every batch in turn, as the two services would."""
        outcomes: list[PullCompleted] = []
        request_ids = _request_ids()
        for chunk in _slices(keys, self._settings.request_size):
            request_id = next(request_ids)
            request = PullRequested(request_id=request_id, link=self._ref, keys=chunk)
            started = start_pull(request, self.gateway, self._settings.batch_size)
            state = PullProgress(request_id=request_id).with_start(started.started)
            progress.update(started.started.counts.total)
            for batch in started.batches:
                result = transfer_batch(batch, self.gateway)
                state = state.with_batch(result)
                progress.update(result.counts.total)
            completion = state.completion()
            assert completion is not None, "every batch of the pull was transferred"
            outcomes.append(completion)
        return _sum_pulls(outcomes, len(keys))

    def delete(self, keys: Sequence[PrimaryKey]) -> DeletionResult:
        """Carry the deletion out as the deletion reconciler would."""
        outcomes: list[DeletionCompleted] = []
        request_ids = _request_ids()
        for chunk in _slices(keys, self._settings.request_size):
            request_id = next(request_ids)
            request = DeletionRequested(
                request_id=request_id, link=self._ref, keys=chunk
            )
            outcomes.append(
                delete_rows(request, self.gateway, self._settings.batch_size)
            )
        return _sum_deletions(outcomes, len(keys))


class PendingRequests:
    """Requests published to the services, and the outcomes heard so far."""

    def __init__(
        self,
        listener: RequestListener,
        request_ids: Sequence[str],
        link_id: str,
        progress: tqdm[Any] | None = None,
    ) -> None:
        """Follow the requests through an open listener."""
        self._listener = listener
        self._order = list(request_ids)
        self._link_id = link_id
        self._progress = progress
        self.pending = set(request_ids)
        self.outcomes: dict[str, PullCompleted | DeletionCompleted] = {}
        self.rejections: list[RequestRejected] = []
        self._progress_of: dict[str, PullProgress] = {}
        self._shown: dict[str, int] = {}

    @property
    def status(self) -> str:
        """Return "pending", "completed" or "rejected", from what was heard so far."""
        if self.pending:
            return "pending"
        return "rejected" if self.rejections else "completed"

    def listen(self, quiet_for: float, longest: float | None = None) -> None:
        """Take in events until none has come for quiet_for seconds, or all are in.

        With longest, it stops after that many seconds in all.
        """
        if not self.pending:
            return
        for event in self._listener.events(self.pending, quiet_for, longest):
            if event.request_id not in self.pending:
                continue  # a late event of a request already complete
            outcome: PullCompleted | DeletionCompleted | RequestRejected | None
            if isinstance(event, PullStarted | BatchTransferred):
                outcome = self._fold(event)
            else:
                outcome = event
            if isinstance(outcome, PullCompleted):
                # The completion event may be read before some of the
                # request's progress events (they travel on another topic):
                # the bar takes the rows it did not see from the outcome.
                self._show(outcome.request_id, outcome.counts.total)
            if outcome is None:
                continue
            request_id = event.request_id
            assert request_id is not None, "only pending requests get this far"
            self.pending.discard(request_id)
            self._listener.forget(request_id)
            self._progress_of.pop(request_id, None)
            self._shown.pop(request_id, None)
            if isinstance(outcome, RequestRejected):
                self.rejections.append(outcome)
            else:
                self.outcomes[outcome.request_id] = outcome
            if not self.pending:
                break

    def _fold(self, event: PullStarted | BatchTransferred) -> PullCompleted | None:
        """Fold a pull's progress as its pull-request service does.

        The last batch's result completes the pull here as it does there,
        with the same outcome: the wait for the service's completion event,
        one more trip through Kafka, is saved. A repeated request, which
        sends no progress, is answered by that event all the same.
        """
        folded = self._progress_of.get(event.request_id)
        if folded is None:
            folded = PullProgress(request_id=event.request_id)
        if isinstance(event, PullStarted):
            folded = folded.with_start(event)
        else:
            folded = folded.with_batch(event)
        self._progress_of[event.request_id] = folded
        self._show(event.request_id, folded.rows_done)
        return folded.completion()

    def _show(self, request_id: str, rows_done: int) -> None:
        """Advance the progress bar to a request's rows done, once per row."""
        shown = self._shown.get(request_id, 0)
        if self._progress is not None and rows_done > shown:
            self._progress.update(rows_done - shown)
        self._shown[request_id] = max(shown, rows_done)

    def wait(self, quiet_for: float) -> list[PullCompleted | DeletionCompleted]:
        """Return every outcome; raise when nothing came for quiet_for seconds."""
        self.listen(quiet_for)
        if self.rejections:
            raise InvalidRequestError(
                "The link services rejected the request: "
                + "; ".join(
                    f"{event.request_id}: {event.reason}" for event in self.rejections
                )
            )
        started = sorted(self.pending & self._progress_of.keys())
        if started:
            raise RequestTimeoutError(
                f"Request(s) {', '.join(started)} of link {self._link_id} started,"
                f" but no news of them came for {quiet_for:.0f} s: a link service"
                " may have stopped mid-way. Rows left mid-way are finished by the"
                " deletion reconciler within two LINK_REDRIVE_INTERVALs, under a"
                " request id of its own; pull the same rows again afterwards to"
                " see where each one is."
            )
        if self.pending:
            raise RequestTimeoutError(
                f"No news came for {quiet_for:.0f} s of request(s)"
                f" {', '.join(sorted(self.pending))} of link {self._link_id}: are"
                " the link services running? The requests stay queued in Kafka"
                " and are carried out once the services run."
            )
        return [self.outcomes[request_id] for request_id in self._order]


ResultCheck = Callable[[PullResult], PullResult]
"""Logs a pull's outcome and raises IncompleteRequestError if rows failed."""


def _accept(result: PullResult) -> PullResult:
    return result


class PullHandle:
    """A pull handed to the services and not waited for (``pull(wait=False)``)."""

    def __init__(
        self,
        pending: PendingRequests,
        requested: int,
        default_timeout: float,
        check: ResultCheck = _accept,
    ) -> None:
        """Keep the requests under way; check judges the outcome when it is in."""
        self._pending = pending
        self._requested = requested
        self._default_timeout = default_timeout
        self._check = check
        self.request_ids = tuple(pending.pending)

    @property
    def status(self) -> str:
        """Return "pending", "completed" or "rejected", without waiting.

        It takes in the events that have come so far, for 50 ms at the most.
        """
        self._pending.listen(quiet_for=0.05, longest=0.05)
        return self._pending.status

    def wait(self, timeout: float | None = None) -> PullResult:
        """Wait for the pull's outcome; timeout is the longest wait without news.

        Raises IncompleteRequestError when rows failed, as a waiting pull does.
        """
        outcomes = self._pending.wait(
            self._default_timeout if timeout is None else timeout
        )
        return self._check(
            _sum_pulls(
                [outcome for outcome in outcomes if isinstance(outcome, PullCompleted)],
                self._requested,
            )
        )


class FinishedPull:
    """A pull carried out before it was returned: embedded mode's ``wait=False``."""

    status = "completed"

    def __init__(self, result: PullResult, check: ResultCheck = _accept) -> None:
        """Keep the outcome."""
        self.result = result
        self.request_ids = result.request_ids
        self._check = check

    def wait(self, timeout: float | None = None) -> PullResult:
        """Return the outcome at once; raise IncompleteRequestError if rows failed."""
        return self._check(self.result)


def _keep_forever(thing: object) -> None:
    """Keep an object alive until the process ends, through interpreter shutdown.

    A forked child must never destroy the Kafka clients it inherited:
    librdkafka's destructor waits on, or asserts about, threads that did not
    survive the fork (the child aborts). A reference that is never released
    keeps the destructor from running. CPython only, as the project is.
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(thing))


class KafkaClients:
    """A link's producer and listener, opened once and kept for every request.

    A producer and a listener each need a round of metadata (and the listener
    its offsets): a single-row pull would mostly wait for them if every
    request opened its own. The listener stays where it was opened, before
    the first request: no outcome can slip past it.

    Fork-safe: a fork waits for clients still opening, and the child sets
    its inherited clients aside and opens its own on first use.
    """

    def __init__(self, settings: LinkSettings, broker: str) -> None:
        """Keep the broker and topics; nothing connects before it is asked to."""
        self._settings = settings
        self._broker = broker
        self._topics = Topics(settings.topic_prefix)
        self._clients: tuple[Publisher, RequestListener] | None = None
        self._opening: threading.Thread | None = None
        self._opening_error: BaseException | None = None
        _EVERY_CLIENTS.add(self)

    def open_in_background(self) -> None:
        """Start opening the clients on a thread of their own, and return at once.

        The decorator calls this before it declares the link's tables, and a
        pull before it reads its keys: the clients' round trips to the broker
        then overlap that work instead of following it. A failure is raised
        by the request that needs the clients.
        """
        if self._clients is not None or self._opening is not None:
            return
        self._opening = threading.Thread(
            target=self._open_in_background, name="link-kafka-connect", daemon=True
        )
        self._opening.start()

    def _open_in_background(self) -> None:
        try:
            self._clients = self._open()
        except BaseException as error:  # raised again by get(), on the caller
            self._opening_error = error

    def _open(self) -> tuple[Publisher, RequestListener]:
        admin = TopicAdmin(self._broker)
        admin.ensure(self._topics.all(), self._settings.topic_partitions)
        listener = RequestListener(
            self._broker, (self._topics.completions, self._topics.pull_progress), admin
        )
        publisher = Publisher(
            self._broker,
            warm_topics=(self._topics.pull_requests, self._topics.deletion_requests),
        )
        return publisher, listener

    def finish_opening(self) -> None:
        """Wait for clients still opening: a fork must not cut them in half."""
        opening = self._opening
        if opening is not None:
            opening.join(BROKER_TIMEOUT)

    def set_inherited_aside(self) -> None:
        """In a forked child: never use, nor destroy, the parent's clients."""
        if self._clients is not None:
            _keep_forever(self._clients)
        self._clients = None
        self._opening = None
        self._opening_error = None

    def get(self) -> tuple[Publisher, RequestListener]:
        """Return the producer and the listener, waiting for them if still opening."""
        if self._opening is not None:
            self._opening.join()
            self._opening = None
            error, self._opening_error = self._opening_error, None
            if error is not None:
                raise error
        if self._clients is None:
            self._clients = self._open()
        return self._clients


_EVERY_CLIENTS: weakref.WeakSet[KafkaClients] = weakref.WeakSet()


def _finish_opening_before_fork() -> None:
    for clients in list(_EVERY_CLIENTS):
        clients.finish_opening()


def _set_inherited_aside_in_child() -> None:
    for clients in list(_EVERY_CLIENTS):
        clients.set_inherited_aside()


os.register_at_fork(
    before=_finish_opening_before_fork, after_in_child=_set_inherited_aside_in_child
)


class KafkaExecutor:
    """Publishes requests to the link services and waits for their outcomes."""

    def __init__(
        self,
        ref: LinkRef,
        settings: LinkSettings,
        broker: str,
        clients: KafkaClients | None = None,
    ) -> None:
        """Keep the link and its clients, which open on first use if not already."""
        self._ref = ref
        self._settings = settings
        self._topics = Topics(settings.topic_prefix)
        self._clients = clients or KafkaClients(settings, broker)

    def connect_ahead(self) -> None:
        """Start opening the Kafka clients, unless they are open or opening."""
        self._clients.open_in_background()

    def _publish(
        self,
        topic: str,
        requests: Sequence[tuple[Request, bytes]],
        progress: tqdm[Any] | None,
    ) -> PendingRequests:
        publisher, listener = self._clients.get()
        listener.expect(request.request_id for request, _ in requests)
        for request, message in requests:
            publisher.publish_serialized(topic, request.request_id, message)
        publisher.flush()
        logger.info(
            "link %s: published %d request(s) to %s, first id %s",
            self._ref.link_id,
            len(requests),
            topic,
            requests[0][0].request_id,
        )
        return PendingRequests(
            listener,
            [request.request_id for request, _ in requests],
            self._ref.link_id,
            progress,
        )

    def submit_pull(
        self,
        keys: Sequence[PrimaryKey],
        progress: tqdm[Any] | None = None,
        check: ResultCheck = _accept,
    ) -> PullHandle:
        """Publish pull requests and return at once with a handle on them."""
        chunks = growing_slices(
            keys, self._settings.batch_size, self._settings.request_size
        )
        requests = requests_within(
            chunks,
            lambda request_id, chunk: PullRequested(
                request_id=request_id, link=self._ref, keys=chunk
            ),
            self._settings.max_request_bytes,
        )
        pending = self._publish(self._topics.pull_requests, requests, progress)
        return PullHandle(pending, len(keys), self._settings.pull_timeout, check)

    def pull(self, keys: Sequence[PrimaryKey], progress: tqdm[Any]) -> PullResult:
        """Publish pull requests and wait until every one is complete."""
        return self.submit_pull(keys, progress).wait()

    def delete(self, keys: Sequence[PrimaryKey]) -> DeletionResult:
        """Publish deletion requests and wait until every one is complete."""
        chunks = _slices(keys, self._settings.request_size)
        requests = requests_within(
            chunks,
            lambda request_id, chunk: DeletionRequested(
                request_id=request_id, link=self._ref, keys=chunk
            ),
            self._settings.max_request_bytes,
        )
        pending = self._publish(self._topics.deletion_requests, requests, None)
        outcomes = pending.wait(self._settings.pull_timeout)
        return _sum_deletions(
            [outcome for outcome in outcomes if isinstance(outcome, DeletionCompleted)],
            len(keys),
        )
