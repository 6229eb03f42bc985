"""Contains the deletion reconciler: it takes rows out of the destination.

It consumes ``link.deletion-requests``. For each request it moves the rows from
Shared or Tainted to Received (helper process DELETE), deletes them and their
part rows from the destination (to Activated), and settles their helper rows:
removed (Unshared) or, when the source flagged the row, deprecated. It then
publishes one ``DeletionCompleted`` on ``link.completions``.

It also re-drives rows that a crash left mid-way: every LINK_REDRIVE_INTERVAL
seconds it scans the helper tables of the links recorded on the destination
server, finishes stuck deletions itself and hands stuck pulls to the transfer
service again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

from faust.types import EventT, StreamT

from link.adapters.link_records import registered_links
from link.config import LinkSettings
from link.domain.events import DeletionCompleted, DeletionRequested
from link.domain.lifecycle import Process
from link.errors import InvalidRequestError
from link.service_layer.deletions import delete_batch, delete_rows
from link.service_layer.redrive import RedrivenPull, StuckRowTracker, redrive_pull
from services.runtime import Service, parse, serve

logger = logging.getLogger(__name__)

SCAN_LIMIT = 10_000
"""Unfinished rows read per link and scan; the rest wait for the next scan."""


@dataclass
class Scan:
    """What one scan for stuck rows found to hand on."""

    pulls: list[RedrivenPull] = field(default_factory=list)


def create_service(settings: LinkSettings) -> Service:
    """Build the deletion reconciler, its agent and its periodic scan."""
    service = Service("deletion-reconciler", settings)
    requests = service.topic(service.topics.deletion_requests)
    transfers = service.topic(service.topics.transfers)
    progress = service.topic(service.topics.pull_progress)
    tracker = StuckRowTracker()

    @service.app.agent(requests)
    async def take_deletion_requests(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await service.handle(event, partial(delete, event))

    async def delete(event: EventT[bytes]) -> None:
        request: DeletionRequested = parse(
            DeletionRequested, event.message.value, settings.max_request_bytes
        )

        def carry_out() -> DeletionCompleted:
            gateway = service.databases.gateway(request.link)
            return delete_rows(request, gateway, settings.batch_size)

        completed = await service.databases.run(carry_out)
        await service.send(service.completions, request.request_id, completed)

    def scan() -> Scan:
        found = Scan()
        destination = service.databases.destination()
        for link in registered_links(destination.connection):
            try:
                service.registry.resolve(link)
            except InvalidRequestError:
                continue  # recorded by a user, but not accepted by the operators
            try:
                gateway = service.databases.gateway(link)
                stuck = tracker.stuck(link.link_id, gateway.unfinished(SCAN_LIMIT))
            except Exception as error:  # one broken link must not stop the others
                logger.warning("re-drive scan skipped link %s: %s", link.link_id, error)
                continue
            if stuck[Process.DELETE]:
                counts, _failures = delete_batch(stuck[Process.DELETE], gateway)
                logger.info(
                    "link %s: re-drove %d stuck deletion(s): %d unshared,"
                    " %d deprecated, %d failed",
                    link.link_id,
                    len(stuck[Process.DELETE]),
                    counts.unshared,
                    counts.deprecated,
                    counts.failed,
                )
            if stuck[Process.PULL]:
                pull = redrive_pull(
                    link, gateway.codec, stuck[Process.PULL], settings.batch_size
                )
                found.pulls.append(pull)
                logger.info(
                    "link %s request %s: re-driving %d stuck pull(s) in %d batch(es)",
                    link.link_id,
                    pull.started.request_id,
                    pull.started.requested,
                    len(pull.batches),
                )
        return found

    # faust's timer decorator carries no type information.
    @service.app.timer(interval=settings.redrive_interval)  # type: ignore[untyped-decorator]
    async def redrive_stuck_rows() -> None:
        try:
            found = await service.databases.run(scan)
        except Exception:
            logger.exception("the scan for stuck rows failed; the next scan retries")
            return
        for pull in found.pulls:
            await service.send(progress, pull.started.request_id, pull.started)
            for batch in pull.batches:
                key = f"{batch.request_id}/{batch.batch_index}"
                await service.send(transfers, key, batch)

    _ = (take_deletion_requests, redrive_stuck_rows)
    return service


def main() -> None:
    """Run the deletion reconciler until it is stopped."""
    serve("link-deletion-reconciler", create_service)


if __name__ == "__main__":
    main()
