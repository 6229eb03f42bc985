"""Contains the deletion of rows from the destination: the reconciler's steps.

A deletion takes each row from Shared or Tainted to Received (helper process
DELETE, source server), then to Activated (row and parts deleted, destination
server), then to Unshared (helper row removed) or, when the source flagged the
row, to Deprecated (source server). Each step is one server; every step reads
the rows first, so a deletion repeated, or resumed after a crash, continues
where the rows are.
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
    logger.info(
        "link %s request %s: deleted %d row(s): %d unshared, %d deprecated,"
        " %d already gone, %d failed",
        gateway.link.link_id,
        request.request_id,
        len(keys),
        counts.unshared,
        counts.deprecated,
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
        elif step is DeletionStep.NOTHING:
            already_gone += 1
        else:
            reason = "the row is being pulled; delete it once its pull is done"
            failures.append(RowFailure(key=codec.to_message(key), reason=reason))

    gateway.mark_deleting(to_start)
    to_remove += to_start
    gateway.remove_from_destination(to_remove)
    to_finish += to_remove

    # Flags are read as they are now: the source may flag a row at any time.
    helpers = gateway.read_helper(to_finish)
    flagged = [key for key in to_finish if key in helpers and helpers[key].is_flagged]
    unflagged = [
        key for key in to_finish if key in helpers and not helpers[key].is_flagged
    ]
    gateway.deprecate(flagged)
    gateway.remove_helper(unflagged)

    settled = gateway.read_helper(to_finish)
    unshared = deprecated = 0
    for key in to_finish:
        helper = settled.get(key)
        if helper is None:
            unshared += 1
        elif helper.is_deprecated and helper.is_flagged:
            deprecated += 1
        else:
            reason = "the source changed the row's flag during its deletion; retry"
            failures.append(RowFailure(key=codec.to_message(key), reason=reason))
    counts = DeletionCounts(
        unshared=unshared,
        deprecated=deprecated,
        already_gone=already_gone,
        failed=len(failures),
    )
    return counts, failures
