"""Contains the re-driving of rows that a crash left in the middle of a step.

A row whose helper row stays in PULL or DELETE is mid-way: its pull or
deletion was interrupted (a service died after activating it, a batch was
dead-lettered after its retries). The deletion reconciler scans for such rows
periodically; a row found unfinished in two scans in a row is taken to be
stuck, rather than merely in flight, and is driven on: pulls by new transfer
batches, deletions by the reconciler itself. Re-driving a row that was in
flight after all is harmless, since every step is idempotent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from link.domain.events import LinkRef, PullStarted, RowCounts, TransferRequested
from link.domain.keys import CanonicalKey, KeyCodec
from link.domain.lifecycle import Process

Unfinished = dict[Process, list[CanonicalKey]]


@dataclass
class StuckRowTracker:
    """Remembers each link's unfinished rows from one scan to the next."""

    previous: dict[str, set[tuple[Process, CanonicalKey]]] = field(default_factory=dict)

    def stuck(self, link_id: str, unfinished: Unfinished) -> Unfinished:
        """Return the rows unfinished now and at the previous scan; keep this scan."""
        now = {(process, key) for process, keys in unfinished.items() for key in keys}
        before = self.previous.get(link_id, set())
        self.previous[link_id] = now
        return {
            process: [key for key in keys if (process, key) in before]
            for process, keys in unfinished.items()
        }


@dataclass(frozen=True)
class RedrivenPull:
    """A pull started on behalf of nobody, to finish stuck rows."""

    started: PullStarted
    batches: list[TransferRequested]


def redrive_pull(
    link: LinkRef, codec: KeyCodec, keys: list[CanonicalKey], batch_size: int
) -> RedrivenPull:
    """Cut stuck activated rows into transfer batches under a new request id."""
    request_id = f"redrive-{uuid.uuid4().hex}"
    attempt = uuid.uuid4().hex
    slices = [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]
    batches = [
        TransferRequested(
            request_id=request_id,
            link=link,
            attempt=attempt,
            batch_index=index,
            batch_count=len(slices),
            keys=[codec.to_message(key) for key in batch],
        )
        for index, batch in enumerate(slices)
    ]
    started = PullStarted(
        request_id=request_id,
        link_id=link.link_id,
        attempt=attempt,
        requested=len(keys),
        batch_count=len(batches),
        counts=RowCounts(),
    )
    return RedrivenPull(started=started, batches=batches)
