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

Two changes, made for every faust app of the process by
``keep_messages_through_rebalances``:

- The stream partitions stay paused during the seek and the emptying of the
  buffers, and are resumed just after: nothing is fetched before the seek, so
  nothing fetched is thrown away.
- While no partition is active, aiokafka hands faust no records. faust passes
  aiokafka its live set of active partitions, and aiokafka reads an empty set
  as "every partition": the records of paused stream partitions came back, and
  faust, finding them not active, dropped them. The first change leaves that
  set empty for the length of a seek, so this one is needed with it; faust's
  own order leaves it empty for a moment too.

Both wrap faust internals (Recovery's two methods that finish a rebalance,
their call of ``consumer.resume_partitions``, and the aiokafka driver's
``_fetch_records``): pyproject.toml keeps faust-streaming below 0.16, and
tests/integration/test_faust_recovery.py loses messages without the changes.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

FINISHING_METHODS = ("on_recovery_completed", "_resume_streams")
"""The methods of faust's Recovery that resume the stream partitions."""

RecoveryStep = Callable[..., Awaitable[None]]

WRAPPED_MARK = "kept_by_datajoint_link"
"""Set on every wrapper made here, so that applying the changes twice wraps once."""


def keep_messages_through_rebalances() -> None:
    """Apply both changes (see the module's documentation); calling again is a no-op."""
    for name in FINISHING_METHODS:
        step: RecoveryStep = getattr(Recovery, name)
        if not getattr(step, WRAPPED_MARK, False):
            setattr(Recovery, name, _resuming_afterwards(step))
    fetch = AIOKafkaConsumerThread._fetch_records
    if not getattr(fetch, WRAPPED_MARK, False):
        guarded = _fetching_active_only(fetch)
        AIOKafkaConsumerThread._fetch_records = guarded  # type: ignore[method-assign]


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

    setattr(finish, WRAPPED_MARK, True)
    return finish


class ActivePartitions:
    """faust's live set of active partitions, as aiokafka is to read it.

    Membership is the live set's; but an empty set means "none" here, where
    aiokafka would read it as "every partition".
    """

    def __init__(self, live: set[TP]) -> None:
        """Wrap the set that faust keeps up to date."""
        self._live = live

    def __bool__(self) -> bool:
        """Return True: aiokafka then tests membership, even of an empty set."""
        return True

    def __contains__(self, partition: object) -> bool:
        """Return whether faust has the partition active now."""
        return partition in self._live


def _fetching_active_only(fetch: Callable[..., Awaitable[Any]]) -> Any:
    @functools.wraps(fetch)
    async def fetch_active(
        self: AIOKafkaConsumerThread,
        consumer: Any,
        active_partitions: set[TP] | None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # None asks for every partition: a client-only app means it.
        partitions = (
            None if active_partitions is None else ActivePartitions(active_partitions)
        )
        return await fetch(self, consumer, partitions, *args, **kwargs)

    setattr(fetch_active, WRAPPED_MARK, True)
    return fetch_active
