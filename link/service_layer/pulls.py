"""Contains the two steps of a pull: starting it, and transferring its batches.

The pull-request service runs ``start_pull``: it takes rows from Unshared to
Activated (source server only). The transfer service runs ``transfer_batch``:
it copies activated rows to the destination (destination server only) and then
finishes them (source server only). Each handler first observes the rows and
asks the lifecycle what to do, so that a repeated message does nothing harmful.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from link.domain.events import (
    BatchTransferred,
    PrimaryKey,
    PullRequested,
    PullStarted,
    RowCounts,
    RowFailure,
    TransferRequested,
)
from link.domain.keys import CanonicalKey, KeyCodec
from link.domain.lifecycle import (
    HelperRow,
    InconsistentRowError,
    Observation,
    Process,
    PullStart,
    State,
    TransferStep,
    classify,
    decide_pull_start,
    decide_transfer_step,
)
from link.errors import InvalidRequestError, RowsAlreadyCopiedError
from link.service_layer.ports import PullGateway

logger = logging.getLogger(__name__)


def canonical_keys(codec: KeyCodec, keys: Sequence[PrimaryKey]) -> list[CanonicalKey]:
    """Return the request's keys in canonical form, without repeats."""
    canonical: list[CanonicalKey] = []
    for position, key in enumerate(keys):
        try:
            canonical.append(codec.canonical(key))
        except InvalidRequestError as error:
            raise InvalidRequestError(f"Key number {position + 1}: {error}") from None
    return list(dict.fromkeys(canonical))


@dataclass
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[RowFailure] = field(default_factory=list)

    def add(self, outcome: str, amount: int = 1) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + amount

    def fail(self, codec: KeyCodec, key: CanonicalKey, reason: str) -> None:
        self.add("failed")
        self.failures.append(RowFailure(key=codec.to_message(key), reason=reason))

    def row_counts(self) -> RowCounts:
        return RowCounts(**self.counts)


@dataclass(frozen=True)
class StartedPull:
    """What starting a pull produced: its start event and its transfer batches."""

    started: PullStarted
    batches: list[TransferRequested]


def start_pull(
    request: PullRequested, gateway: PullGateway, batch_size: int
) -> StartedPull:
    """Activate the requested rows and cut the pull into transfer batches.

    Rows pulled for the first time, the usual case, are activated in one
    all-or-nothing step without looking at them first. When any of them is
    not Unshared, nothing is changed by that step and every row is observed
    and decided on its own. Each call is a new attempt at the request, with
    an attempt id of its own in the start and in every batch.
    """
    attempt = uuid.uuid4().hex
    codec = gateway.codec
    keys = canonical_keys(codec, request.keys)
    tally = _Tally()
    if gateway.activate_unshared(keys):
        activated, to_transfer = len(keys), keys
    else:
        activated, to_transfer = _activate_by_state(gateway, keys, tally)

    slices = [
        to_transfer[i : i + batch_size] for i in range(0, len(to_transfer), batch_size)
    ]
    batches = [
        TransferRequested(
            request_id=request.request_id,
            link=gateway.link,
            attempt=attempt,
            batch_index=index,
            batch_count=len(slices),
            keys=[codec.to_message(key) for key in batch],
        )
        for index, batch in enumerate(slices)
    ]
    started = PullStarted(
        request_id=request.request_id,
        link_id=gateway.link.link_id,
        attempt=attempt,
        requested=len(keys),
        batch_count=len(batches),
        counts=tally.row_counts(),
        failures=tally.failures,
    )
    logger.info(
        "link %s request %s: %d row(s) requested, %d activated, %d to transfer"
        " in %d batch(es), %d already shared, %d failed",
        gateway.link.link_id,
        request.request_id,
        len(keys),
        activated,
        len(to_transfer),
        len(batches),
        started.counts.already_shared,
        started.counts.failed,
    )
    return StartedPull(started=started, batches=batches)


def _activate_by_state(
    gateway: PullGateway, keys: list[CanonicalKey], tally: _Tally
) -> tuple[int, list[CanonicalKey]]:
    """Observe each row and activate it as its state requires.

    Returns how many rows were activated and the rows to transfer.
    """
    codec = gateway.codec
    observations = gateway.observe(keys)
    to_activate: list[CanonicalKey] = []
    to_reactivate: list[CanonicalKey] = []
    to_transfer: list[CanonicalKey] = []

    for key in keys:
        try:
            decision = decide_pull_start(observations[key])
        except InconsistentRowError as error:
            tally.fail(codec, key, error.reason)
            continue
        if decision is PullStart.ACTIVATE:
            to_activate.append(key)
        elif decision is PullStart.REACTIVATE:
            to_reactivate.append(key)
        elif decision is PullStart.CONTINUE:
            to_transfer.append(key)
        elif decision is PullStart.ALREADY_SHARED:
            tally.add("already_shared")
        elif decision is PullStart.ALREADY_TAINTED:
            # As a Deprecated row pulled again counts deprecated.
            tally.add("tainted")
        elif decision is PullStart.DEPRECATED:
            tally.add("deprecated")
        elif decision is PullStart.ORPHANED:
            reason = (
                "the row is not in the source table (the source deleted it),"
                " but still in the destination: delete() takes it out"
            )
            tally.fail(codec, key, reason)
        else:
            tally.fail(codec, key, "the row is being deleted from the destination")

    gateway.activate(to_activate)
    gateway.reactivate(to_reactivate)
    to_transfer = to_activate + to_reactivate + to_transfer
    return len(to_activate) + len(to_reactivate), to_transfer


def _settled_outcome(state: State) -> str:
    return {
        State.SHARED: "shared",
        State.TAINTED: "tainted",
        State.DEPRECATED: "deprecated",
    }[state]


def transfer_batch(
    request: TransferRequested, gateway: PullGateway
) -> BatchTransferred:
    """Copy a batch of activated rows and finish their pull.

    The first attempt does not ask the destination which rows it holds when
    every row of the batch is an unflagged row in process PULL: it copies
    them all. A row the destination holds already (a redelivered or repeated
    batch, or a copy whose finish a crash prevented) makes the copy fail as a
    whole, and the batch is taken up again from a full look at the rows.
    """
    try:
        return _transfer_batch(request, gateway, optimistic=True)
    except RowsAlreadyCopiedError:
        logger.info(
            "link %s request %s batch %d: rows are in the destination already,"
            " looking again",
            gateway.link.link_id,
            request.request_id,
            request.batch_index + 1,
        )
        return _transfer_batch(request, gateway, optimistic=False)


def _observe_for_transfer(
    gateway: PullGateway, keys: list[CanonicalKey], *, optimistic: bool
) -> dict[CanonicalKey, Observation]:
    if optimistic and gateway.all_pulling(keys):
        pulling = HelperRow(process=Process.PULL, is_flagged=False, is_deprecated=False)
        # Absent from the destination until the copy finds otherwise.
        return {
            key: Observation(in_source=True, helper=pulling, in_destination=False)
            for key in keys
        }
    return gateway.observe(keys, helper_implies_source=True)


def _transfer_batch(
    request: TransferRequested, gateway: PullGateway, *, optimistic: bool
) -> BatchTransferred:
    codec = gateway.codec
    keys = canonical_keys(codec, request.keys)
    observations = _observe_for_transfer(gateway, keys, optimistic=optimistic)
    tally = _Tally()
    to_copy: list[CanonicalKey] = []
    to_finish: list[CanonicalKey] = []
    to_deprecate: list[CanonicalKey] = []

    for key in keys:
        observation = observations[key]
        try:
            step = decide_transfer_step(observation)
        except InconsistentRowError as error:
            tally.fail(codec, key, error.reason)
            continue
        if step is TransferStep.COPY:
            to_copy.append(key)
        elif step is TransferStep.FINISH:
            to_finish.append(key)
        elif step is TransferStep.DEPRECATE:
            to_deprecate.append(key)
        elif step is TransferStep.NOTHING:
            tally.add(_settled_outcome(classify(observation)))
        else:
            tally.fail(codec, key, "the row is not being pulled")

    rows, part_rows = gateway.copy(to_copy)
    to_finish += to_copy
    # A row flagged while it travelled lands Tainted: the finishing statements
    # tell the two apart by the flag as it is now.
    shared, tainted = gateway.finish(to_finish)
    if shared + tainted < len(to_finish):
        # Another delivery of this batch finished some rows first: count all
        # of them by their flags as they are now. Another request pulling the
        # same rows looks the same from here, and is counted the same (see
        # "Known limitations" in the README).
        settled = gateway.read_helper(to_finish)
        tainted = sum(
            1 for key in to_finish if key in settled and settled[key].is_flagged
        )
        shared = len(to_finish) - tainted
    tally.add("shared", shared)
    tally.add("tainted", tainted)
    gateway.deprecate(to_deprecate)
    # The guard of deprecate() leaves a row that the source unflagged meanwhile
    # in PULL: it is not deprecated, and its next pull continues it.
    after = gateway.read_helper(to_deprecate)
    for key in to_deprecate:
        helper = after.get(key)
        if helper is not None and helper.is_deprecated:
            tally.add("deprecated")
        else:
            tally.fail(codec, key, "the source unflagged the row during its pull")

    result = BatchTransferred(
        request_id=request.request_id,
        link_id=gateway.link.link_id,
        attempt=request.attempt,
        batch_index=request.batch_index,
        batch_count=request.batch_count,
        counts=tally.row_counts(),
        failures=tally.failures,
    )
    logger.info(
        "link %s request %s batch %d/%d: copied %d row(s) and %d part row(s),"
        " %d shared, %d tainted, %d deprecated, %d failed",
        gateway.link.link_id,
        request.request_id,
        request.batch_index + 1,
        request.batch_count,
        rows,
        part_rows,
        result.counts.shared,
        result.counts.tainted,
        result.counts.deprecated,
        result.counts.failed,
    )
    return result
