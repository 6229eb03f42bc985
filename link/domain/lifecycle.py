"""Contains the lifecycle of a linked row: its states and who may move it.

A row's state is never stored. It is read off three observations: whether the
row is in the source table, what its helper row says, and whether it is in the
destination table. ``docs/lifecycle.md`` describes what this module encodes;
every service asks this module what to do with a row before touching it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Process(enum.StrEnum):
    """The process a helper row is in; the spellings are the helper table's enum."""

    PULL = "PULL"
    DELETE = "DELETE"
    NONE = "NONE"


class State(enum.StrEnum):
    """The states of a linked row."""

    UNSHARED = "Unshared"
    ACTIVATED = "Activated"
    RECEIVED = "Received"
    SHARED = "Shared"
    TAINTED = "Tainted"
    DEPRECATED = "Deprecated"
    ORPHANED = "Orphaned"
    """In the destination only: the source deleted the row, and its helper row
    with it (DataJoint's delete cascades into the helper table)."""


@dataclass(frozen=True)
class HelperRow:
    """What the helper table says about one row."""

    process: Process
    is_flagged: bool
    is_deprecated: bool


@dataclass(frozen=True)
class Observation:
    """Where one row is present, as read from the three tables."""

    in_source: bool
    helper: HelperRow | None
    in_destination: bool


class InconsistentRowError(Exception):
    """A row was observed in a combination that the lifecycle does not allow."""

    def __init__(self, observation: Observation, reason: str) -> None:
        """Keep the observation so that callers can report the row's key with it."""
        super().__init__(reason)
        self.observation = observation
        self.reason = reason


def classify(observation: Observation) -> State:
    """Return the state of a row, or raise when the observation is inconsistent."""
    helper = observation.helper
    if not observation.in_source:
        if helper is None and observation.in_destination:
            return State.ORPHANED
        raise InconsistentRowError(observation, "the row is not in the source table")
    if helper is None:
        if observation.in_destination:
            raise InconsistentRowError(
                observation, "the row is in the destination but has no helper row"
            )
        return State.UNSHARED
    if helper.process is not Process.NONE:
        return State.RECEIVED if observation.in_destination else State.ACTIVATED
    if observation.in_destination:
        return State.TAINTED if helper.is_flagged else State.SHARED
    if helper.is_flagged:
        return State.DEPRECATED
    if helper.is_deprecated:
        return State.UNSHARED
    raise InconsistentRowError(
        observation,
        "the helper row is idle, unflagged and not deprecated,"
        " but the row is missing from the destination",
    )


class PullStart(enum.Enum):
    """What the pull-request service does with a row that a pull request names."""

    ACTIVATE = enum.auto()
    """Insert a helper row with process PULL (Unshared to Activated)."""
    REACTIVATE = enum.auto()
    """Replace the helper row of a deprecated row that the source unflagged."""
    CONTINUE = enum.auto()
    """The row's pull is already under way: hand it to the transfer service again."""
    ALREADY_SHARED = enum.auto()
    """The row is Shared: there is nothing to pull."""
    ALREADY_TAINTED = enum.auto()
    """The row is Tainted: there is nothing to pull, and it is counted tainted."""
    DEPRECATED = enum.auto()
    """The row is Deprecated: the source flagged it, so it must not be pulled."""
    BEING_DELETED = enum.auto()
    """The row is on its way out of the destination: it cannot be pulled now."""
    ORPHANED = enum.auto()
    """The source deleted the row: there is nothing to pull, only a copy to delete."""


def decide_pull_start(observation: Observation) -> PullStart:
    """Decide how a pull request moves a row; only Unshared rows are activated."""
    state = classify(observation)
    helper = observation.helper
    if state is State.UNSHARED:
        return PullStart.ACTIVATE if helper is None else PullStart.REACTIVATE
    if state in (State.ACTIVATED, State.RECEIVED):
        assert helper is not None
        if helper.process is Process.DELETE:
            return PullStart.BEING_DELETED
        return PullStart.CONTINUE
    if state is State.SHARED:
        return PullStart.ALREADY_SHARED
    if state is State.TAINTED:
        return PullStart.ALREADY_TAINTED
    if state is State.ORPHANED:
        return PullStart.ORPHANED
    return PullStart.DEPRECATED


class TransferStep(enum.Enum):
    """What the transfer service does with a row that a transfer batch names."""

    COPY = enum.auto()
    """Copy the row, its parts and its objects (Activated to Received)."""
    FINISH = enum.auto()
    """Set the helper's process to NONE (Received to Shared or Tainted)."""
    DEPRECATE = enum.auto()
    """The source flagged the row before it arrived (Activated to Deprecated)."""
    NOTHING = enum.auto()
    """A repeated or stale message: the row is already past this step."""
    NOT_PULLING = enum.auto()
    """The row is not being pulled (not activated, or being deleted)."""


def decide_transfer_step(observation: Observation) -> TransferStep:
    """Decide the transfer service's next step for one row of a batch."""
    state = classify(observation)
    helper = observation.helper
    if state in (State.SHARED, State.TAINTED, State.DEPRECATED):
        return TransferStep.NOTHING
    if helper is None or helper.process is not Process.PULL:
        return TransferStep.NOT_PULLING  # Orphaned too: no helper row
    if state is State.ACTIVATED:
        return TransferStep.DEPRECATE if helper.is_flagged else TransferStep.COPY
    return TransferStep.FINISH


def state_after_finish(helper: HelperRow) -> State:
    """Return where a received row lands when its pull finishes."""
    return State.TAINTED if helper.is_flagged else State.SHARED


class DeletionStep(enum.Enum):
    """What the deletion reconciler does next with a row that a deletion names."""

    START = enum.auto()
    """Set the helper's process to DELETE (Shared or Tainted to Received)."""
    REMOVE = enum.auto()
    """Delete the row and its parts from the destination (Received to Activated)."""
    FINISH = enum.auto()
    """Settle the helper row: gone when unflagged, deprecated when flagged."""
    REMOVE_ORPHAN = enum.auto()
    """Delete an Orphaned row and its parts from the destination: no helper row
    is left to settle, and the row leaves the link altogether."""
    NOTHING = enum.auto()
    """The row is already out of the destination (Unshared, Deprecated, or gone
    from all three tables after its source row was deleted)."""
    BEING_PULLED = enum.auto()
    """The row's pull is under way: it cannot be deleted now."""


def decide_deletion_step(observation: Observation) -> DeletionStep:
    """Decide the deletion reconciler's next step for one row."""
    if not (
        observation.in_source
        or observation.helper is not None
        or observation.in_destination
    ):
        # An Orphaned row already removed: a repeated deletion finds it nowhere.
        return DeletionStep.NOTHING
    state = classify(observation)
    if state is State.ORPHANED:
        return DeletionStep.REMOVE_ORPHAN
    helper = observation.helper
    if state in (State.UNSHARED, State.DEPRECATED):
        return DeletionStep.NOTHING
    if state in (State.SHARED, State.TAINTED):
        return DeletionStep.START
    assert helper is not None
    if helper.process is Process.PULL:
        return DeletionStep.BEING_PULLED
    return DeletionStep.REMOVE if state is State.RECEIVED else DeletionStep.FINISH
