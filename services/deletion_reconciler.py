"""Contains the deletion reconciler: it takes rows out of the destination.

It consumes ``link.deletion-requests``. For each request it moves the rows from
Shared or Tainted to Received (helper process DELETE), deletes them and their
part rows from the destination (to Activated), and settles their helper rows:
removed (Unshared) or, when the source flagged the row, deprecated. It then
publishes one ``DeletionCompleted`` on ``link.completions``.
"""

from __future__ import annotations

import logging
from functools import partial

from faust.types import EventT, StreamT

from link.config import LinkSettings
from link.domain.events import DeletionCompleted, DeletionRequested
from link.service_layer.deletions import delete_rows
from services.runtime import Service, parse

logger = logging.getLogger(__name__)


def create_service(settings: LinkSettings) -> Service:
    """Build the deletion reconciler and its agent."""
    service = Service("deletion-reconciler", settings)
    requests = service.topic(service.topics.deletion_requests)

    @service.app.agent(requests)
    async def take_deletion_requests(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await service.handle(event, partial(delete, event))

    async def delete(event: EventT[bytes]) -> None:
        request: DeletionRequested = parse(DeletionRequested, event.message.value)

        def carry_out() -> DeletionCompleted:
            gateway = service.databases.gateway(request.link)
            return delete_rows(request, gateway, settings.batch_size)

        completed = await service.databases.run(carry_out)
        await service.send(service.completions, request.request_id, completed)

    _ = take_deletion_requests
    return service


def main() -> None:
    """Run the deletion reconciler until it is stopped."""
    create_service(LinkSettings()).run()


if __name__ == "__main__":
    main()
