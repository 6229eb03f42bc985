"""Contains the deletion of rows from the destination: the reconciler's steps.

A deletion takes each row from Shared or Tainted to Received (helper process
DELETE, source server), then to Activated (row and parts deleted, destination
server), then to Unshared (helper row removed) or, when the source flagged the
row, to Deprecated (source server). Each step is one server; every step reads
the rows first, so a deletion repeated, or resumed after a crash, continues
where the rows are. A row that the source deleted, its helper row with it
(Orphaned), is deleted from the destination and leaves the link.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from link.domain.events import (
    DeletionCompleted,
    DeletionCounts,
    DeletionRequested,
    RowFailure,
)
from link.domain.keys import CanonicalKey
from link.domain.lifecycle import (
    DeletionStep,
    InconsistentRowError,
    Observation,
    State,
    classify,
    decide_deletion_step,
)
from link.service_layer.ports import DeletionGateway
from link.service_layer.pulls import canonical_keys

logger = logging.getLogger(__name__)


def delete_rows(
    request: DeletionRequested, gateway: DeletionGateway, batch_size: int
) -> DeletionCompleted:
    """Carry a deletion request out, batch by batch, and return its outcome."""
    codec = gateway.codec
    keys = canonical_keys(codec, request.keys)
    counts = DeletionCounts()
    failures: list[RowFailure] = []
    for start in range(0, len(keys), batch_size):
        batch_counts, batch_failures = delete_batch(
            keys[start : start + batch_size], gateway
        )
        counts = counts + batch_counts
        failures.extend(batch_failures)
    if counts.orphaned:
        logger.warning(
            "link %s request %s: %d row(s) were no longer in the source table (the"
            " source deleted them and their helper rows); deleted them from the"
            " destination",
            gateway.link.link_id,
            request.request_id,
            counts.orphaned,
        )
    logger.info(
        "link %s request %s: deleted %d row(s): %d unshared, %d deprecated,"
        " %d orphaned, %d already gone, %d failed",
        gateway.link.link_id,
        request.request_id,
        len(keys),
        counts.unshared,
        counts.deprecated,
        counts.orphaned,
        counts.already_gone,
        counts.failed,
    )
    return DeletionCompleted(
        request_id=request.request_id,
        link_id=gateway.link.link_id,
        requested=len(keys),
        counts=counts,
        failures=failures,
    )


def delete_batch(
    keys: Sequence[CanonicalKey], gateway: DeletionGateway
) -> tuple[DeletionCounts, list[RowFailure]]:
    """Take one batch of rows out of the destination."""
    codec = gateway.codec
    observations = gateway.observe(keys)
    failures: list[RowFailure] = []
    already_gone = 0
    to_start: list[CanonicalKey] = []
    to_remove: list[CanonicalKey] = []
    to_finish: list[CanonicalKey] = []
    orphans: list[CanonicalKey] = []

    for key in keys:
        try:
            step = decide_deletion_step(observations[key])
        except InconsistentRowError as error:
            failures.append(RowFailure(key=codec.to_message(key), reason=error.reason))
            continue
        if step is DeletionStep.START:
            to_start.append(key)
        elif step is DeletionStep.REMOVE:
            to_remove.append(key)
        elif step is DeletionStep.FINISH:
            to_finish.append(key)
        elif step is DeletionStep.REMOVE_ORPHAN:
            orphans.append(key)
        elif step is DeletionStep.NOTHING:
            already_gone += 1
        else:
            reason = "the row is being pulled; delete it once its pull is done"
            failures.append(RowFailure(key=codec.to_message(key), reason=reason))

    gateway.mark_deleting(to_start)
    to_remove += to_start
    # Orphans leave in the same destination transaction; without helper rows,
    # they have nothing to settle on the source.
    gateway.remove_from_destination(to_remove + orphans)
    to_finish += to_remove

    unshared, deprecated, unsettled = settle_removed(to_finish, gateway)
    failures.extend(
        RowFailure(key=codec.to_message(key), reason=reason)
        for key, reason in unsettled.items()
    )
    counts = DeletionCounts(
        unshared=unshared,
        deprecated=deprecated,
        already_gone=already_gone,
        orphaned=len(orphans),
        failed=len(failures),
    )
    return counts, failures


SETTLE_ATTEMPTS = 3
"""Reads of the flags a deletion makes for a row whose flag keeps changing."""


def settle_removed(
    keys: Sequence[CanonicalKey], gateway: DeletionGateway
) -> tuple[int, int, dict[CanonicalKey, str]]:
    """Settle the helper rows of rows taken out of the destination.

    An unflagged row's helper row is removed (Activated to Unshared), a
    flagged one's is deprecated (to Deprecated). The flags are read as they
    are now; the source may flag or unflag a row between that read and the
    guarded write, which then changes nothing, so such a row is read and
    settled again, up to SETTLE_ATTEMPTS times. Returns how many rows ended
    Unshared and how many Deprecated, and why each other row did not settle.
    """
    unshared = deprecated = 0
    pending = list(keys)
    unsettled: dict[CanonicalKey, str] = {}
    for _attempt in range(SETTLE_ATTEMPTS):
        helpers = gateway.read_helper(pending)
        gateway.deprecate(
            [key for key in pending if key in helpers and helpers[key].is_flagged]
        )
        gateway.remove_helper(
            [key for key in pending if key in helpers and not helpers[key].is_flagged]
        )
        settled = gateway.read_helper(pending)
        unsettled = {}
        for key in pending:
            # A helper row keeps its source row by a foreign key, and a row
            # without one is out of the link either way: in the source is
            # taken as read.
            observation = Observation(True, settled.get(key), in_destination=False)
            try:
                state = classify(observation)
            except InconsistentRowError as error:
                unsettled[key] = error.reason
                continue
            if state is State.UNSHARED:
                unshared += 1
            elif state is State.DEPRECATED:
                deprecated += 1
            else:
                unsettled[key] = (
                    "the source kept changing the row's flag during its deletion; retry"
                )
        pending = list(unsettled)
        if not pending:
            break
    return unshared, deprecated, unsettled
