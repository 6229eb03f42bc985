"""Contains the deletion reconciler.

In this version it starts, consumes ``link.deletion-requests`` and answers each
request with a rejection that says deletions over Kafka are not carried out
yet; deleting, deprecating flagged rows and re-driving rows left mid-way by a
crash come with the lifecycle's delete transitions (issue 3).
"""

from __future__ import annotations

import logging
from functools import partial

from faust.types import EventT, StreamT

from link.config import LinkSettings
from link.errors import InvalidRequestError
from services.runtime import Service

logger = logging.getLogger(__name__)

NOT_YET = "deletion requests are not carried out by this version of the link services"


def create_service(settings: LinkSettings) -> Service:
    """Build the deletion reconciler and its agent."""
    service = Service("deletion-reconciler", settings)
    requests = service.topic(service.topics.deletion_requests)

    @service.app.agent(requests)
    async def take_deletion_requests(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await service.handle(event, partial(refuse, event))

    async def refuse(event: EventT[bytes]) -> None:
        raise InvalidRequestError(NOT_YET)

    _ = take_deletion_requests
    return service


def main() -> None:
    """Run the deletion reconciler until it is stopped."""
    create_service(LinkSettings()).run()


if __name__ == "__main__":
    main()
