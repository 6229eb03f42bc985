"""Keeps faust from dropping the first messages a worker fetches after a rebalance.

Once a worker has its partitions (at start-up, or after another worker joined
or died), faust's recovery resumes fetching from the stream partitions, then
seeks them to their committed offsets, then resumes its flow control, which
empties every stream's buffer. Messages fetched while the seek waits on the
broker reach the buffers and are emptied out with them; faust has already
counted them as read, so it never fetches them again, and once a later message
of the same partition is processed the offset committed passes them by. A pull
request lost so is never started and its requester waits in vain; observed
here after a pull-request worker was killed during a large pull (faust-streaming
0.15.3, the newest release, as of December 2026).

``resume_streams_after_seeking`` changes the order for every faust app of the
process: the partitions stay paused during the seek and the emptying of the
buffers, and are resumed just after. Nothing is then fetched before the seek,
so nothing fetched is thrown away. It wraps the two methods of faust's Recovery
that finish a rebalance, so it depends on their names and on their calling
``consumer.resume_partitions``: pyproject.toml keeps faust-streaming below 0.16,
and tests/integration/test_faust_recovery.py loses messages without the change.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.tables.recovery import Recovery
from faust.types import TP

FINISHING_METHODS = ("on_recovery_completed", "_resume_streams")
"""The methods of faust's Recovery that resume the stream partitions."""

RecoveryStep = Callable[..., Awaitable[None]]


def resume_streams_after_seeking() -> None:
    """Make faust resume stream partitions only once seeking and clearing are done."""
    for name in FINISHING_METHODS:
        step: RecoveryStep = getattr(Recovery, name)
        if not getattr(step, "resumes_after_seeking", False):
            setattr(Recovery, name, _resuming_afterwards(step))


def _resuming_afterwards(step: RecoveryStep) -> RecoveryStep:
    @functools.wraps(step)
    async def finish(self: Recovery, *args: Any, **kwargs: Any) -> None:
        consumer = self.app.consumer
        generation = self.app.consumer_generation_id
        held: set[TP] = set()

        def hold(partitions: Iterable[TP]) -> None:
            held.update(partitions)

        # An attribute of the instance hides the class's method for this call.
        consumer.resume_partitions = hold  # type: ignore[method-assign,assignment]
        try:
            await step(self, *args, **kwargs)
        finally:
            del consumer.resume_partitions
            # A rebalance since then leaves the partitions to the next recovery,
            # which resumes those this worker still has.
            if held and self.app.consumer_generation_id == generation:
                consumer.resume_partitions(held & set(consumer.assignment()))

    finish.resumes_after_seeking = True  # type: ignore[attr-defined]
    return finish
