"""Tests of the row lifecycle against the state table of the lifecycle contract."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

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
    state_after_finish,
)

ANY_PROCESS = frozenset(Process)
ANY_BOOL = frozenset({False, True})


@dataclass(frozen=True)
class TableRow:
    """One row of the state table in lifecycle.md; sets stand for "any"."""

    in_source: bool
    has_helper: bool
    in_destination: bool
    processes: frozenset[Process]
    flagged: frozenset[bool]
    deprecated: frozenset[bool]
    state: State

    def matches(self, observation: Observation) -> bool:
        """Tell whether an observation falls under this row of the table."""
        helper = observation.helper
        if (
            observation.in_source != self.in_source
            or observation.in_destination != self.in_destination
            or (helper is not None) != self.has_helper
        ):
            return False
        if helper is None:
            return True
        return (
            helper.process in self.processes
            and helper.is_flagged in self.flagged
            and helper.is_deprecated in self.deprecated
        )


PULL_OR_DELETE = frozenset({Process.PULL, Process.DELETE})
NONE = frozenset({Process.NONE})

# The state table of lifecycle.md, row by row. The table names is_deprecated only
# in its Unshared (deprecated) row, so every other row holds whatever it says.
STATE_TABLE = (
    TableRow(True, False, False, ANY_PROCESS, ANY_BOOL, ANY_BOOL, State.UNSHARED),
    TableRow(True, True, False, PULL_OR_DELETE, ANY_BOOL, ANY_BOOL, State.ACTIVATED),
    TableRow(True, True, True, PULL_OR_DELETE, ANY_BOOL, ANY_BOOL, State.RECEIVED),
    TableRow(True, True, True, NONE, frozenset({False}), ANY_BOOL, State.SHARED),
    TableRow(True, True, True, NONE, frozenset({True}), ANY_BOOL, State.TAINTED),
    TableRow(True, True, False, NONE, frozenset({True}), ANY_BOOL, State.DEPRECATED),
    TableRow(
        True,
        True,
        False,
        NONE,
        frozenset({False}),
        frozenset({True}),
        State.UNSHARED,
    ),
    TableRow(False, False, True, ANY_PROCESS, ANY_BOOL, ANY_BOOL, State.ORPHANED),
)


def _all_observations() -> list[Observation]:
    helpers: list[HelperRow | None] = [None]
    helpers.extend(
        HelperRow(process=process, is_flagged=flagged, is_deprecated=deprecated)
        for process, flagged, deprecated in itertools.product(
            Process, ANY_BOOL, ANY_BOOL
        )
    )
    return [
        Observation(in_source=in_source, helper=helper, in_destination=in_destination)
        for in_source, helper, in_destination in itertools.product(
            ANY_BOOL, helpers, ANY_BOOL
        )
    ]


def _describe(observation: Observation) -> str:
    helper = observation.helper
    parts = [
        "source" if observation.in_source else "no-source",
        "destination" if observation.in_destination else "no-destination",
    ]
    if helper is None:
        parts.append("no-helper")
    else:
        parts.append(helper.process.value)
        parts.append("flagged" if helper.is_flagged else "unflagged")
        parts.append("deprecated" if helper.is_deprecated else "current")
    return "-".join(parts)


def _documented_state(observation: Observation) -> State | None:
    states = [row.state for row in STATE_TABLE if row.matches(observation)]
    assert len(states) <= 1, f"the test's table overlaps for {observation}"
    return states[0] if states else None


CONSISTENT = [
    pytest.param(observation, state, id=f"{_describe(observation)}->{state.value}")
    for observation in _all_observations()
    if (state := _documented_state(observation)) is not None
]
INCONSISTENT = [
    pytest.param(observation, id=_describe(observation))
    for observation in _all_observations()
    if _documented_state(observation) is None
]


def helper(
    process: Process, *, flagged: bool = False, deprecated: bool = False
) -> HelperRow:
    """Return a helper row."""
    return HelperRow(process=process, is_flagged=flagged, is_deprecated=deprecated)


def seen(
    helper_row: HelperRow | None, *, in_destination: bool, in_source: bool = True
) -> Observation:
    """Return an observation of a row."""
    return Observation(
        in_source=in_source, helper=helper_row, in_destination=in_destination
    )


UNSHARED = seen(None, in_destination=False)
UNSHARED_DEPRECATED = seen(helper(Process.NONE, deprecated=True), in_destination=False)
ACTIVATED = seen(helper(Process.PULL), in_destination=False)
ACTIVATED_FLAGGED = seen(helper(Process.PULL, flagged=True), in_destination=False)
ACTIVATED_DELETE = seen(helper(Process.DELETE), in_destination=False)
ACTIVATED_DELETE_FLAGGED = seen(
    helper(Process.DELETE, flagged=True), in_destination=False
)
RECEIVED = seen(helper(Process.PULL), in_destination=True)
RECEIVED_FLAGGED = seen(helper(Process.PULL, flagged=True), in_destination=True)
RECEIVED_DELETE = seen(helper(Process.DELETE), in_destination=True)
SHARED = seen(helper(Process.NONE), in_destination=True)
TAINTED = seen(helper(Process.NONE, flagged=True), in_destination=True)
DEPRECATED = seen(
    helper(Process.NONE, flagged=True, deprecated=True), in_destination=False
)
ORPHANED = seen(None, in_destination=True, in_source=False)


def test_the_test_table_covers_both_outcomes() -> None:
    assert len(CONSISTENT) + len(INCONSISTENT) == len(_all_observations()) == 52
    assert {param.values[1] for param in CONSISTENT} == set(State)


@pytest.mark.parametrize(("observation", "state"), CONSISTENT)
def test_classify_follows_the_state_table(
    observation: Observation, state: State
) -> None:
    result = classify(observation)

    assert result is state


@pytest.mark.parametrize("observation", INCONSISTENT)
def test_classify_refuses_combinations_outside_the_table(
    observation: Observation,
) -> None:
    with pytest.raises(InconsistentRowError) as caught:
        classify(observation)

    assert caught.value.observation == observation
    assert caught.value.reason
    assert str(caught.value) == caught.value.reason


@pytest.mark.parametrize(
    ("observation", "words"),
    [
        pytest.param(
            seen(helper(Process.NONE), in_destination=True, in_source=False),
            "not in the source",
            id="missing-from-source",
        ),
        pytest.param(
            seen(None, in_destination=True),
            "no helper row",
            id="destination-without-helper",
        ),
        pytest.param(
            seen(helper(Process.NONE), in_destination=False),
            "missing from the destination",
            id="idle-helper-without-destination",
        ),
    ],
)
def test_inconsistency_reasons_say_what_is_wrong(
    observation: Observation, words: str
) -> None:
    with pytest.raises(InconsistentRowError, match=words):
        classify(observation)


@pytest.mark.parametrize(
    ("observation", "decision"),
    [
        pytest.param(UNSHARED, PullStart.ACTIVATE, id="unshared"),
        pytest.param(
            UNSHARED_DEPRECATED, PullStart.REACTIVATE, id="unshared-deprecated"
        ),
        pytest.param(ACTIVATED, PullStart.CONTINUE, id="activated"),
        pytest.param(ACTIVATED_FLAGGED, PullStart.CONTINUE, id="activated-flagged"),
        pytest.param(ACTIVATED_DELETE, PullStart.BEING_DELETED, id="activated-delete"),
        pytest.param(
            ACTIVATED_DELETE_FLAGGED,
            PullStart.BEING_DELETED,
            id="activated-delete-flagged",
        ),
        pytest.param(RECEIVED, PullStart.CONTINUE, id="received"),
        pytest.param(RECEIVED_FLAGGED, PullStart.CONTINUE, id="received-flagged"),
        pytest.param(RECEIVED_DELETE, PullStart.BEING_DELETED, id="received-delete"),
        pytest.param(SHARED, PullStart.ALREADY_SHARED, id="shared"),
        pytest.param(TAINTED, PullStart.ALREADY_TAINTED, id="tainted"),
        pytest.param(DEPRECATED, PullStart.DEPRECATED, id="deprecated"),
        pytest.param(ORPHANED, PullStart.ORPHANED, id="orphaned"),
    ],
)
def test_decide_pull_start(observation: Observation, decision: PullStart) -> None:
    result = decide_pull_start(observation)

    assert result is decision


@pytest.mark.parametrize(
    ("observation", "step"),
    [
        pytest.param(UNSHARED, TransferStep.NOT_PULLING, id="unshared"),
        pytest.param(
            UNSHARED_DEPRECATED, TransferStep.NOT_PULLING, id="unshared-deprecated"
        ),
        pytest.param(ACTIVATED, TransferStep.COPY, id="activated"),
        pytest.param(ACTIVATED_FLAGGED, TransferStep.DEPRECATE, id="activated-flagged"),
        pytest.param(ACTIVATED_DELETE, TransferStep.NOT_PULLING, id="activated-delete"),
        pytest.param(
            ACTIVATED_DELETE_FLAGGED,
            TransferStep.NOT_PULLING,
            id="activated-delete-flagged",
        ),
        pytest.param(RECEIVED, TransferStep.FINISH, id="received"),
        pytest.param(RECEIVED_FLAGGED, TransferStep.FINISH, id="received-flagged"),
        pytest.param(RECEIVED_DELETE, TransferStep.NOT_PULLING, id="received-delete"),
        pytest.param(SHARED, TransferStep.NOTHING, id="shared"),
        pytest.param(TAINTED, TransferStep.NOTHING, id="tainted"),
        pytest.param(DEPRECATED, TransferStep.NOTHING, id="deprecated"),
        pytest.param(ORPHANED, TransferStep.NOT_PULLING, id="orphaned"),
    ],
)
def test_decide_transfer_step(observation: Observation, step: TransferStep) -> None:
    result = decide_transfer_step(observation)

    assert result is step


@pytest.mark.parametrize("observation", INCONSISTENT)
def test_decisions_refuse_inconsistent_rows(observation: Observation) -> None:
    with pytest.raises(InconsistentRowError):
        decide_pull_start(observation)
    with pytest.raises(InconsistentRowError):
        decide_transfer_step(observation)


@pytest.mark.parametrize(
    ("flagged", "state"),
    [
        pytest.param(False, State.SHARED, id="unflagged"),
        pytest.param(True, State.TAINTED, id="flagged"),
    ],
)
def test_a_finished_row_lands_where_classify_then_finds_it(
    flagged: bool, state: State
) -> None:
    received = helper(Process.PULL, flagged=flagged)
    finished = seen(helper(Process.NONE, flagged=flagged), in_destination=True)

    landing = state_after_finish(received)

    assert landing is state
    assert classify(finished) is state


def test_a_deprecated_row_that_the_source_unflags_can_be_pulled_again() -> None:
    unflagged = seen(helper(Process.NONE, deprecated=True), in_destination=False)

    state = classify(unflagged)
    decision = decide_pull_start(unflagged)

    assert state is State.UNSHARED
    assert decision is PullStart.REACTIVATE
