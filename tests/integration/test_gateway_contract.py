"""One contract for the gateway: the real one on MariaDB and the in-memory fake.

Every write of the gateway is guarded by the state it expects; these guards
are what make a late or repeated message harmless. Each case runs against the
real gateway on the two servers and against the unit tests' in-memory fake, so
the fake cannot drift from the real thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import datajoint as dj
import pytest

from link import link
from link.adapters.gateway import LinkGateway
from link.domain.keys import CanonicalKey
from link.domain.lifecycle import HelperRow, Observation, Process
from tests.conftest import SchemaNames
from tests.servers import Endpoints
from tests.unit.fakes import InMemoryGateway

pytestmark = pytest.mark.integration

Helper = tuple[str, bool, bool] | None
"""A helper row as (process, flagged, deprecated), or no helper row."""


@dataclass
class Subject:
    """One row of the contract's table, set up and read back in either world."""

    helper: Callable[[Helper], None]
    read: Callable[[], Helper]
    in_destination: Callable[[], bool]


class World:
    """A gateway and the means to put its rows in any state."""

    gateway: Any

    def subject(self, subject_id: int, helper: Helper, in_destination: bool) -> Subject:
        """Put a row in a state and return handles to it."""
        raise NotImplementedError


class MemoryWorld(World):
    """The unit tests' in-memory gateway."""

    def __init__(self) -> None:
        """Start with rows 1 to 9 in the source."""
        self.gateway = InMemoryGateway(source=range(1, 10), parts_per_row=1)

    def subject(self, subject_id: int, helper: Helper, in_destination: bool) -> Subject:
        key: CanonicalKey = (subject_id,)

        def set_helper(value: Helper) -> None:
            if value is None:
                self.gateway.helper.pop(key, None)
            else:
                self.gateway.helper[key] = HelperRow(
                    Process(value[0]), value[1], value[2]
                )

        def read() -> Helper:
            row = self.gateway.helper.get(key)
            return (
                None
                if row is None
                else (row.process.value, row.is_flagged, row.is_deprecated)
            )

        set_helper(helper)
        if in_destination:
            self.gateway.destination.add(key)
        return Subject(set_helper, read, lambda: key in self.gateway.destination)


class MariaDBWorld(World):
    """The real gateway on the two MariaDB servers."""

    def __init__(
        self,
        endpoints: Endpoints,
        names: SchemaNames,
        source_admin: dj.Instance,
        destination_admin: dj.Instance,
    ) -> None:
        """Declare a small linked table with a part, rows 1 to 9 in the source."""
        schema = source_admin.Schema(names.source)

        @schema
        class Subject(dj.Manual):  # type: ignore[misc]
            definition = """
            subject_id : int32
            ---
            name : varchar(16)
            """

            class Note(dj.Part):  # type: ignore[misc]
                definition = """
                -> master
                ---
                note : varchar(32)
                """

        Subject.insert({"subject_id": i, "name": f"s{i}"} for i in range(1, 10))
        Subject.Note.insert({"subject_id": i, "note": f"n{i}"} for i in range(1, 10))

        @link(
            endpoints.source_host,
            names.source,
            names.helper,
            "Helper",
            names.destination,
        )
        class Subject:  # type: ignore[no-redef]
            pass

        context = Subject._link_context
        self.gateway = LinkGateway(context.ref, context.source, context.destination)
        self.helper_table = f"`{names.helper}`.`helper`"
        self.destination = f"`{names.destination}`.`subject`"
        self.source_admin = source_admin.connection
        self.destination_admin = destination_admin.connection

    def subject(self, subject_id: int, helper: Helper, in_destination: bool) -> Subject:
        def set_helper(value: Helper) -> None:
            self.source_admin.query(
                f"DELETE FROM {self.helper_table} WHERE subject_id = %s",
                args=(subject_id,),
            )
            if value is not None:
                process, flagged, deprecated = value
                self.source_admin.query(
                    f"INSERT INTO {self.helper_table} VALUES (%s, %s, %s, %s)",
                    args=(
                        subject_id,
                        process,
                        "TRUE" if flagged else "FALSE",
                        "TRUE" if deprecated else "FALSE",
                    ),
                )

        def read() -> Helper:
            row = self.source_admin.query(
                f"SELECT process, is_flagged, is_deprecated FROM {self.helper_table}"
                " WHERE subject_id = %s",
                args=(subject_id,),
            ).fetchone()
            return None if row is None else (row[0], row[1] == "TRUE", row[2] == "TRUE")

        def present() -> bool:
            row = self.destination_admin.query(
                f"SELECT COUNT(*) FROM {self.destination} WHERE subject_id = %s",
                args=(subject_id,),
            ).fetchone()
            return bool(row[0])

        set_helper(helper)
        if in_destination:
            self.destination_admin.query(
                f"INSERT INTO {self.destination} VALUES (%s, %s)",
                args=(subject_id, f"s{subject_id}"),
            )
        return Subject(set_helper, read, present)


@pytest.fixture(params=["memory", "mariadb"])
def world(
    request: pytest.FixtureRequest,
    link_environment: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    """Return the in-memory world or the one on the two real servers."""
    if request.param == "memory":
        yield MemoryWorld()
        return
    monkeypatch.delenv("LINK_BROKER")
    yield MariaDBWorld(
        request.getfixturevalue("endpoints"),
        request.getfixturevalue("schema_names"),
        request.getfixturevalue("source_admin"),
        request.getfixturevalue("destination_admin"),
    )


PULL = ("PULL", False, False)
PULL_FLAGGED = ("PULL", True, False)
DELETE = ("DELETE", False, False)
DELETE_FLAGGED = ("DELETE", True, False)
SHARED = ("NONE", False, False)
TAINTED = ("NONE", True, False)
DEPRECATED = ("NONE", True, True)
UNFLAGGED_DEPRECATED = ("NONE", False, True)

# (operation, helper before, helper after); every other helper state must be
# left exactly as it was by that operation.
CASES: list[tuple[str, Helper, Helper]] = [
    ("activate", None, PULL),
    ("reactivate", UNFLAGGED_DEPRECATED, PULL),
    ("finish", PULL, SHARED),
    ("finish", PULL_FLAGGED, TAINTED),
    ("deprecate", PULL_FLAGGED, DEPRECATED),
    ("deprecate", DELETE_FLAGGED, DEPRECATED),
    ("mark_deleting", SHARED, DELETE),
    ("mark_deleting", TAINTED, DELETE_FLAGGED),
    ("remove_helper", DELETE, None),
]
STATES: list[Helper] = [
    None,
    PULL,
    PULL_FLAGGED,
    DELETE,
    DELETE_FLAGGED,
    SHARED,
    TAINTED,
    DEPRECATED,
    UNFLAGGED_DEPRECATED,
]


@pytest.mark.parametrize("operation", sorted({case[0] for case in CASES}))
def test_each_write_changes_only_the_states_it_is_for(
    world: World, operation: str
) -> None:
    subjects = {
        state: world.subject(number, state, in_destination=False)
        for number, state in enumerate(STATES, start=1)
    }
    expected = {state: state for state in STATES}
    for name, before, after in CASES:
        if name == operation:
            expected[before] = after

    getattr(world.gateway, operation)([(n,) for n in range(1, len(STATES) + 1)])

    assert {state: subjects[state].read() for state in STATES} == expected


def test_observe_reports_source_helper_and_destination(world: World) -> None:
    world.subject(1, None, in_destination=False)
    world.subject(2, TAINTED, in_destination=True)

    observed = world.gateway.observe([(1,), (2,), (99,)])

    assert observed == {
        (1,): Observation(True, None, False),
        (2,): Observation(True, HelperRow(Process.NONE, True, False), True),
        (99,): Observation(False, None, False),
    }


def test_removing_from_the_destination_takes_only_the_named_rows(world: World) -> None:
    first = world.subject(1, DELETE, in_destination=True)
    second = world.subject(2, SHARED, in_destination=True)

    world.gateway.remove_from_destination([(1,)])

    assert not first.in_destination()
    assert second.in_destination()


def test_unfinished_rows_are_those_in_pull_or_delete(world: World) -> None:
    for number, state in enumerate(STATES, start=1):
        world.subject(number, state, in_destination=False)

    unfinished = world.gateway.unfinished(100)

    assert sorted(unfinished[Process.PULL]) == [(2,), (3,)]
    assert sorted(unfinished[Process.DELETE]) == [(4,), (5,)]


def test_unshared_rows_are_activated_together(world: World) -> None:
    first = world.subject(1, None, in_destination=False)
    second = world.subject(2, None, in_destination=False)

    assert world.gateway.activate_unshared([(1,), (2,)])

    assert first.read() == PULL
    assert second.read() == PULL


@pytest.mark.parametrize(
    ("other", "other_in_destination"),
    [
        pytest.param(PULL, False, id="activated"),
        pytest.param(SHARED, True, id="shared"),
        pytest.param(UNFLAGGED_DEPRECATED, False, id="deprecated-unflagged"),
        pytest.param(None, True, id="in-destination-without-helper"),
    ],
)
def test_one_row_not_unshared_activates_none(
    world: World, other: Helper, other_in_destination: bool
) -> None:
    unshared = world.subject(1, None, in_destination=False)
    other_row = world.subject(2, other, in_destination=other_in_destination)

    assert not world.gateway.activate_unshared([(1,), (2,)])

    assert unshared.read() is None
    assert other_row.read() == other


def test_a_row_missing_from_the_source_activates_none(world: World) -> None:
    unshared = world.subject(1, None, in_destination=False)

    assert not world.gateway.activate_unshared([(1,), (99,)])

    assert unshared.read() is None


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(None, id="no-helper"),
        pytest.param(PULL_FLAGGED, id="flagged"),
        pytest.param(DELETE, id="deleting"),
        pytest.param(SHARED, id="shared"),
    ],
)
def test_rows_are_all_pulling_only_when_every_one_is_unflagged_in_pull(
    world: World, other: Helper
) -> None:
    world.subject(1, PULL, in_destination=False)
    world.subject(2, PULL, in_destination=False)
    world.subject(3, other, in_destination=False)

    assert world.gateway.all_pulling([(1,), (2,)])
    assert not world.gateway.all_pulling([(1,), (2,), (3,)])
    assert not world.gateway.all_pulling([(1,), (99,)])
