"""Contains the transfer service: it copies activated rows and finishes their pull.

It consumes ``link.transfers``, where each message is one batch of one pull.
Any number of transfer processes share the batches as one consumer group. For
each batch it copies rows and part rows to the destination in one transaction
(Activated to Received), sets the helper rows to NONE (Received to Shared or
Tainted), and reports the batch on ``link.pull-progress``.
"""

from __future__ import annotations

import logging
from functools import partial

from faust.types import EventT, StreamT

from link.adapters.kafka import MAX_MESSAGE_BYTES
from link.config import LinkSettings
from link.domain.events import (
    BatchTransferred,
    RowCounts,
    RowFailure,
    TransferRequested,
)
from link.service_layer.pulls import transfer_batch
from services.runtime import Databases, Service, parse, serve

logger = logging.getLogger(__name__)


def create_service(settings: LinkSettings) -> Service:
    """Build the transfer service and its agent."""
    service = Service("transfer", settings)
    transfers = service.topic(service.topics.transfers)
    progress_topic = service.topic(service.topics.pull_progress)

    # Each of the agent's actors has its own database thread and connections:
    # while one batch is written to the destination, the next is read from the
    # source.
    @service.app.agent(transfers, concurrency=settings.transfer_concurrency)
    async def transfer_batches(stream: StreamT[bytes]) -> None:
        databases = service.new_databases()
        async for event in stream.events():
            batch: list[TransferRequested] = []

            async def give_up(
                reason: str, batch: list[TransferRequested] = batch
            ) -> None:
                # The batch's rows stay Activated, a valid state from which a
                # later pull continues; the requester learns which rows failed.
                if batch:
                    await report_failed(batch[0], reason)

            await service.handle(
                event, partial(transfer, databases, event, batch), give_up
            )

    async def transfer(
        databases: Databases, event: EventT[bytes], seen: list[TransferRequested]
    ) -> None:
        request: TransferRequested = parse(
            TransferRequested, event.message.value, MAX_MESSAGE_BYTES
        )
        seen[:] = [request]

        def copy() -> BatchTransferred:
            return transfer_batch(request, databases.gateway(request.link))

        result = await databases.run(copy)
        await service.send(progress_topic, request.request_id, result)

    async def report_failed(request: TransferRequested, reason: str) -> None:
        failed = BatchTransferred(
            request_id=request.request_id,
            link_id=request.link.link_id,
            attempt=request.attempt,
            batch_index=request.batch_index,
            batch_count=request.batch_count,
            counts=RowCounts(failed=len(request.keys)),
            failures=[RowFailure(key=key, reason=reason) for key in request.keys],
        )
        await service.send(progress_topic, request.request_id, failed)

    _ = transfer_batches
    return service


def main() -> None:
    """Run one transfer worker until it is stopped."""
    serve("link-transfer", create_service)


if __name__ == "__main__":
    main()
