"""Contains the pull-request service: it starts each requested row's pull.

It consumes ``link.pull-requests``, activates the rows (Unshared to Activated,
on the source server), announces the pull on ``link.pull-progress`` and hands
the rows to the transfer service in batches on ``link.transfers``. It also
follows ``link.pull-progress`` and publishes one completion per request on
``link.completions`` once every batch is in. Its bookkeeping of requests
is a faust table, kept in Kafka, partitioned like the progress topic by
request id.
"""

from __future__ import annotations

import datetime
import json
import logging
from functools import partial

from faust.types import EventT, StreamT

from link.adapters.kafka import MAX_MESSAGE_BYTES
from link.config import LinkSettings
from link.domain.events import (
    BatchTransferred,
    LinkRef,
    PullRequested,
    PullStarted,
    fingerprint,
)
from link.domain.progress import PullProgress, completed_before
from link.errors import InvalidRequestError
from link.service_layer.pulls import StartedPull, start_pull
from services.runtime import Service, parse, serve

logger = logging.getLogger(__name__)

ProgressEvent = PullStarted | BatchTransferred


def create_service(settings: LinkSettings) -> Service:
    """Build the pull-request service and its agents."""
    service = Service("pull-requests", settings)
    requests = service.topic(service.topics.pull_requests)
    transfers = service.topic(service.topics.transfers)
    progress_topic = service.topic(service.topics.pull_progress)
    progress_table = service.table("pull-progress")

    @service.app.agent(requests)
    async def take_pull_requests(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await service.handle(event, partial(start, event))

    async def start(event: EventT[bytes]) -> None:
        request: PullRequested = parse(
            PullRequested, event.message.value, settings.max_request_bytes
        )
        # A request id is carried out once. A repeated request is answered
        # with the first one's outcome, or left to the first one under way.
        # The lookup sees requests whose progress partition this worker owns:
        # all of them with one pull-request worker.
        known = progress_table.get(request.request_id)
        asked = fingerprint(request)
        # Where this message lies in its topic: Kafka delivers the same
        # message again only when a worker stopped before finishing it.
        position = f"{event.message.partition}/{event.message.offset}"
        if known is not None:
            progress = PullProgress.model_validate(known)
            if progress.fingerprint not in (None, asked):
                raise InvalidRequestError(
                    f"Request id {request.request_id} was already used for a"
                    " different request (other link or keys); choose a new id."
                )
            if progress.outcome is not None:
                await service.send(
                    service.completions, request.request_id, progress.outcome
                )
                logger.info(
                    "link %s request %s: repeated request, answered again",
                    link_name(request.link),
                    request.request_id,
                )
                return
            if progress.start is not None and progress.start.started_from != position:
                logger.info(
                    "link %s request %s: repeated request, first one under way",
                    link_name(request.link),
                    request.request_id,
                )
                return
            # Either this very message was started before and its pull is not
            # complete (the worker that started it may have stopped before
            # handing over every batch), or only batch results of the request
            # are known (its start was lost with its worker). A new attempt
            # hands every batch over; rows shared before count already shared.
            logger.warning(
                "link %s request %s: delivered again before its pull completed;"
                " starting it again",
                link_name(request.link),
                request.request_id,
            )

        def activate() -> StartedPull:
            gateway = service.databases.gateway(request.link)
            return start_pull(request, gateway, settings.batch_size)

        started = await service.databases.run(activate)
        started_event = started.started.model_copy(
            update={"fingerprint": asked, "started_from": position}
        )
        await service.send(progress_topic, request.request_id, started_event)
        for batch in started.batches:
            await service.send(
                transfers, f"{request.request_id}/{batch.batch_index}", batch
            )

    @service.app.agent(progress_topic)
    async def follow_progress(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await service.handle(event, partial(track, event))

    async def track(event: EventT[bytes]) -> None:
        progress_event = parse_progress(event.message.value)
        request_id = progress_event.request_id
        stored = progress_table.get(request_id)
        progress = (
            PullProgress.model_validate(stored)
            if stored is not None
            else PullProgress(request_id=request_id)
        )
        if progress.completed:
            return
        if isinstance(progress_event, PullStarted):
            progress = progress.with_start(progress_event)
        else:
            progress = progress.with_batch(progress_event)
        completion = progress.completion()
        if completion is not None:
            await service.send(service.completions, request_id, completion)
            # Only the outcome is kept once a request is complete: a late
            # duplicate event cannot announce it again, and a repeated request
            # is answered with it.
            progress = progress.settled(completion)
            logger.info(
                "link %s request %s completed: %d requested, %d shared, %d tainted,"
                " %d deprecated, %d already shared, %d failed",
                completion.link_id,
                request_id,
                completion.requested,
                completion.counts.shared,
                completion.counts.tainted,
                completion.counts.deprecated,
                completion.counts.already_shared,
                completion.counts.failed,
            )
        progress_table[request_id] = progress.model_dump(mode="json")

    # faust's timer decorator carries no type information.
    @service.app.timer(  # type: ignore[untyped-decorator]
        interval=sweep_interval(settings.outcome_retention)
    )
    async def forget_old_outcomes() -> None:
        # Outcomes are kept to answer a repeated request id; without an end
        # the table, held in memory and replayed at start-up, would only grow.
        cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
            seconds=settings.outcome_retention
        )
        expired = [
            request_id
            for request_id, kept in list(progress_table.items())
            if completed_before(kept, cutoff)
        ]
        for request_id in expired:
            del progress_table[request_id]
        if expired:
            logger.info(
                "forgot the outcomes of %d request(s) completed before %s",
                len(expired),
                cutoff.isoformat(timespec="seconds"),
            )

    _ = (take_pull_requests, follow_progress, forget_old_outcomes)
    return service


def sweep_interval(retention: float) -> float:
    """Return the seconds between sweeps of old outcomes: a tenth of the retention.

    At least a second, at most an hour: an outcome is forgotten at most that
    long after its retention ends.
    """
    return min(max(retention / 10, 1.0), 3600.0)


def link_name(link: LinkRef | str) -> str:
    """Return a link's readable name, whether named in full or by registry name."""
    return link if isinstance(link, str) else link.link_id


def parse_progress(payload: bytes | None) -> ProgressEvent:
    """Parse a progress event of either kind, of any version the service reads."""
    try:
        document = json.loads(payload or b"")
    except ValueError:
        document = None
    kind = document.get("type") if isinstance(document, dict) else None
    model: type[ProgressEvent] = (
        BatchTransferred if kind == "BatchTransferred" else PullStarted
    )
    # Anything else is refused by the parse, with its reason.
    event: ProgressEvent = parse(model, payload, MAX_MESSAGE_BYTES)
    return event


def main() -> None:
    """Run the pull-request service until it is stopped."""
    serve("link-pull-requests", create_service)


if __name__ == "__main__":
    main()
