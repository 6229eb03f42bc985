"""The declaration of the destination and helper tables on the real servers.

Covers the four source tiers and their part names, foreign keys that the
destination inlines (projected, nullable, in another schema, several levels
deep), destination tables that exist already with another heading, and the
errors that name a missing grant or a missing source table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import datajoint as dj
import pytest

from link import link
from link.adapters.gateway import LinkGateway
from link.adapters.servers import open_destination, open_source
from link.adapters.tables import find_source_tables, heading_specs
from link.config import LinkSettings
from link.domain.events import PullRequested, RowCounts
from link.errors import DestinationError, SourceError
from link.service_layer.pulls import start_pull, transfer_batch
from tests.conftest import SchemaNames
from tests.helpers import assert_rows_equal, fetch_sorted
from tests.servers import Endpoints

pytestmark = pytest.mark.integration


@pytest.fixture
def other_source(source_admin: dj.Instance, schema_names: SchemaNames) -> Iterator[str]:
    """Return a second source schema; drop the schemas that reference it first."""
    name = f"{schema_names.source}_other"
    yield name
    for schema in (schema_names.helper, schema_names.source, name):
        source_admin.connection.query(f"DROP DATABASE IF EXISTS `{schema}`")


@pytest.fixture
def unreadable_source_schema(
    source_admin: dj.Instance, schema_names: SchemaNames
) -> Iterator[str]:
    """Return a schema name on the source server that the link user has no grant on.

    The link user's grants cover ``src_%`` and ``helper_%``; the destination's
    name, used on the source server, is covered by neither.
    """
    yield schema_names.destination
    for schema in (schema_names.helper, schema_names.source, schema_names.destination):
        source_admin.connection.query(f"DROP DATABASE IF EXISTS `{schema}`")


def link_class(
    endpoints: Endpoints,
    names: SchemaNames,
    class_name: str,
    *,
    helper_schema: str | None = None,
) -> Any:
    """Link the source table of class_name, as ``@link`` on an empty class does."""
    decorate = link(
        endpoints.source_host,
        names.source,
        helper_schema or names.helper,
        f"{class_name}Outbound",
        names.destination,
    )
    return decorate(type(class_name, (), {"__doc__": f"{class_name}, linked."}))


def pull_in_process(table: Any) -> RowCounts:
    """Pull every source row with both pull steps run in-process."""
    context = table._link_context
    gateway = LinkGateway(
        context.ref,
        open_source(context.ref.source_host, LinkSettings()),
        open_destination(),
    )
    codec = gateway.codec
    primary_keys = table().source.keys()
    keys = [codec.to_message(codec.canonical(key)) for key in primary_keys]
    request = PullRequested(request_id="declaration-1", link=context.ref, keys=keys)
    started = start_pull(request, gateway, batch_size=2)
    counts = started.started.counts
    for batch in started.batches:
        counts = counts + transfer_batch(batch, gateway).counts
    return counts


def destination_tables(destination_admin: dj.Instance, schema: str) -> dict[str, str]:
    """Return each table of a destination schema with its CREATE TABLE statement."""
    # Tables named ~... are DataJoint's and the link's own bookkeeping.
    names = destination_admin.connection.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
        " AND table_name NOT LIKE '~%%'",
        args=(schema,),
    ).fetchall()
    return {
        name: destination_admin.connection.query(
            f"SHOW CREATE TABLE `{schema}`.`{name}`"
        ).fetchone()[1]
        for (name,) in names
    }


def foreign_keys(connection: dj.Connection, schema: str) -> list[tuple[str, str]]:
    """Return (table, referenced table) of every foreign key in a schema."""
    rows = connection.query(
        "SELECT table_name, referenced_table_name"
        " FROM information_schema.referential_constraints"
        " WHERE constraint_schema = %s ORDER BY table_name, referenced_table_name",
        args=(schema,),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def assert_same_heading(
    source: dj.Connection,
    source_table: str,
    destination: dj.Connection,
    destination_table: str,
) -> None:
    """Assert the destination declares what the source implies, attribute-wise."""
    source_schema, source_name = source_table.replace("`", "").split(".")
    schema, name = destination_table.replace("`", "").split(".")
    assert heading_specs(destination, schema, name) == heading_specs(
        source, source_schema, source_name, {}
    )


# -- tiers and part names -------------------------------------------------------

TIERS = {
    "manual": (dj.Manual, ""),
    "lookup": (dj.Lookup, "#"),
    "imported": (dj.Imported, "_"),
    "computed": (dj.Computed, "__"),
}


def declare_tier(source_admin: dj.Instance, schema_name: str, tier: str) -> Any:
    """Declare a Recording table of the tier, keyed by its parent alone, with a part."""
    schema = source_admin.Schema(schema_name)

    @schema
    class Subject(dj.Manual):  # type: ignore[misc]
        definition = """
        subject_id : int32
        ---
        subject_name : varchar(16)
        """

    base, _prefix = TIERS[tier]
    channel = type(
        "Channel",
        (dj.Part,),
        {
            "definition": """
            -> master
            channel : int16
            ---
            gain = 1.0 : float64
            """
        },
    )
    recording: Any = type(
        "Recording",
        (base,),
        {
            "definition": """
            # a recording; auto-populated tiers key it by the parent alone
            -> Subject
            ---
            duration : float64   # seconds
            """,
            "Channel": channel,
            "make": lambda self, key: None,
        },
    )
    # Job metadata adds hidden columns to auto-populated tables; the destination
    # must neither declare nor copy them.
    with source_admin.config.override(jobs__add_job_metadata=True):
        schema(recording, context={"Subject": Subject})
    Subject.insert([{"subject_id": i, "subject_name": f"s{i}"} for i in (1, 2)])
    direct = {"allow_direct_insert": True} if tier in ("imported", "computed") else {}
    recording.insert([{"subject_id": i, "duration": i * 1.5} for i in (1, 2)], **direct)
    recording.Channel.insert(
        [{"subject_id": 1, "channel": c, "gain": c / 4} for c in (0, 1)], **direct
    )
    return recording


@pytest.mark.parametrize("tier", sorted(TIERS))
@pytest.mark.usefixtures("link_environment")
def test_every_tier_links_to_a_manual_table_named_without_the_prefix(
    tier: str,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    recording = declare_tier(source_admin, schema_names.source, tier)
    prefix = TIERS[tier][1]
    assert recording.table_name == f"{prefix}recording"
    assert recording.Channel.table_name == f"{prefix}recording__channel"

    table = link_class(endpoints, schema_names, "Recording")
    counts = pull_in_process(table)

    assert issubclass(table, dj.Manual)
    assert table.table_name == "recording"
    assert table.Channel.table_name == "recording__channel"
    assert sorted(destination_tables(destination_admin, schema_names.destination)) == [
        "recording",
        "recording__channel",
    ]
    assert_same_heading(
        source_admin.connection,
        recording.full_table_name,
        destination_admin.connection,
        table.full_table_name,
    )
    assert_same_heading(
        source_admin.connection,
        recording.Channel.full_table_name,
        destination_admin.connection,
        table.Channel.full_table_name,
    )
    hidden = destination_admin.connection.query(
        "SELECT COUNT(*) FROM information_schema.columns"
        " WHERE table_schema = %s AND column_name LIKE '\\_%%'",
        args=(schema_names.destination,),
    ).fetchone()[0]
    assert hidden == 0
    assert counts == RowCounts(shared=2)
    assert_rows_equal(fetch_sorted(recording), fetch_sorted(table()))
    assert_rows_equal(fetch_sorted(recording.Channel), fetch_sorted(table.Channel()))


@pytest.mark.usefixtures("link_environment")
def test_parts_of_a_table_whose_name_only_looks_alike_are_not_copied(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    schema = source_admin.Schema(schema_names.source)
    recording = declare_tier(source_admin, schema_names.source, "computed")
    # "_arecording__take" matches "__recording__%" when "_" means any letter.
    take = type(
        "Take",
        (dj.Part,),
        {"definition": "-> master\ntake : int16\n---\nnote = '' : varchar(8)\n"},
    )
    arecording: Any = type(
        "Arecording",
        (dj.Imported,),
        {
            "definition": "arecording_id : int32\n",
            "Take": take,
            "make": lambda self, key: None,
        },
    )
    schema(arecording)
    arecording.insert1({"arecording_id": 1}, allow_direct_insert=True)
    arecording.Take.insert1({"arecording_id": 1, "take": 1}, allow_direct_insert=True)

    table = link_class(endpoints, schema_names, "Recording")

    assert pull_in_process(table) == RowCounts(shared=2)
    assert_rows_equal(fetch_sorted(recording.Channel), fetch_sorted(table.Channel()))


# -- foreign keys ------------------------------------------------------------------


def declare_lab_pipeline(
    source_admin: dj.Instance, schema_name: str, other_name: str
) -> dict[str, Any]:
    """Declare a pipeline whose foreign keys take every shape the link inlines."""
    other = source_admin.Schema(other_name)
    schema = source_admin.Schema(schema_name)

    @other
    class Lab(dj.Lookup):  # type: ignore[misc]
        definition = """
        # a lab, in another schema
        lab_id : int16          # the lab's number
        ---
        lab_name : varchar(32)
        """
        contents = ({"lab_id": 1, "lab_name": "one"}, {"lab_id": 2, "lab_name": "two"})

    @schema
    class Experimenter(dj.Lookup):  # type: ignore[misc]
        definition = """
        experimenter : varchar(24)   # who
        """
        contents = ({"experimenter": "ada"}, {"experimenter": "bob"})

    @schema
    class Subject(dj.Manual):  # type: ignore[misc]
        definition = """
        -> Lab
        subject_id : int unsigned
        ---
        subject_uid : uuid
        sex : enum('F', 'M', 'U')
        """

    @schema
    class Session(dj.Manual):  # type: ignore[misc]
        definition = """
        # a session: projected, nullable and cross-schema foreign keys
        -> Subject
        session_idx : int8
        ---
        -> [nullable] Experimenter
        -> Experimenter.proj(reviewer="experimenter")
        -> [nullable] Subject.proj(buddy_lab="lab_id", buddy_id="subject_id")
        -> [unique] Subject.proj(twin_lab="lab_id", twin_id="subject_id")
        """

        class Trial(dj.Part):  # type: ignore[misc]
            definition = """
            # a trial whose own foreign keys point elsewhere
            -> master
            trial_idx : int32
            ---
            -> Lab.proj(host_lab="lab_id")
            -> [nullable] Experimenter.proj(scorer="experimenter")
            """

    @schema
    class Scan(dj.Manual):  # type: ignore[misc]
        definition = """
        # three levels below Lab: its key type is two parents away
        -> Session
        scan_idx : int16
        ---
        -> [nullable] Session.Trial
        """

    Subject.insert(
        [
            {"lab_id": lab, "subject_id": i, "subject_uid": uuid.uuid4(), "sex": "F"}
            for lab in (1, 2)
            for i in (1, 2)
        ]
    )
    Session.insert1(
        {
            "lab_id": 1,
            "subject_id": 1,
            "session_idx": 0,
            "reviewer": "bob",
            "twin_lab": 2,
            "twin_id": 2,
        }
    )
    Session.insert1(
        {
            "lab_id": 1,
            "subject_id": 2,
            "session_idx": -1,
            "experimenter": "ada",
            "reviewer": "ada",
            "buddy_lab": 2,
            "buddy_id": 1,
            "twin_lab": 1,
            "twin_id": 1,
        }
    )
    Session.Trial.insert1(
        {"lab_id": 1, "subject_id": 1, "session_idx": 0, "trial_idx": 5, "host_lab": 2}
    )
    Session.Trial.insert1(
        {
            "lab_id": 1,
            "subject_id": 1,
            "session_idx": 0,
            "trial_idx": 6,
            "host_lab": 1,
            "scorer": "bob",
        }
    )
    Scan.insert1({"lab_id": 1, "subject_id": 1, "session_idx": 0, "scan_idx": 1})
    Scan.insert1(
        {
            "lab_id": 1,
            "subject_id": 1,
            "session_idx": 0,
            "scan_idx": 2,
            "trial_idx": 6,
        }
    )
    return {"Lab": Lab, "Subject": Subject, "Session": Session, "Scan": Scan}


@pytest.mark.usefixtures("link_environment")
def test_foreign_keys_are_inlined_with_the_types_of_their_origin(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    other_source: str,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    tables = declare_lab_pipeline(source_admin, schema_names.source, other_source)

    session = link_class(endpoints, schema_names, "Session")
    scan = link_class(endpoints, schema_names, "Scan")

    expected = {
        "lab_id": ("int16", False),
        "subject_id": ("int unsigned", False),
        "session_idx": ("int8", False),
        "experimenter": ("varchar(24)", True),
        "reviewer": ("varchar(24)", False),
        "buddy_lab": ("int16", True),
        "buddy_id": ("int unsigned", True),
        "twin_lab": ("int16", False),
        "twin_id": ("int unsigned", False),
    }
    attributes = session.heading.attributes
    for name, (type_spec, nullable) in expected.items():
        attr = attributes[name]
        assert (attr.original_type or attr.type, attr.nullable) == (
            type_spec,
            nullable,
        ), name
    assert attributes["lab_id"].comment == "the lab's number"
    trial = session.Trial.heading.attributes
    assert trial["host_lab"].original_type == "int16"
    assert trial["scorer"].nullable
    assert scan.heading.attributes["lab_id"].original_type == "int16"
    assert scan.heading.attributes["trial_idx"].original_type == "int32"
    assert scan.heading.attributes["trial_idx"].nullable
    assert session.heading.indexes[("twin_lab", "twin_id")]["unique"]
    # Only the part's reference to its master remains.
    assert foreign_keys(destination_admin.connection, schema_names.destination) == [
        ("session__trial", "session")
    ]
    for source_table, destination_table in (
        (tables["Session"], session),
        (tables["Session"].Trial, session.Trial),
        (tables["Scan"], scan),
    ):
        assert_same_heading(
            source_admin.connection,
            source_table.full_table_name,
            destination_admin.connection,
            destination_table.full_table_name,
        )

    assert pull_in_process(session) == RowCounts(shared=2)
    assert pull_in_process(scan) == RowCounts(shared=2)
    assert_rows_equal(fetch_sorted(tables["Session"]), fetch_sorted(session()))
    assert_rows_equal(
        fetch_sorted(tables["Session"].Trial), fetch_sorted(session.Trial())
    )
    assert_rows_equal(fetch_sorted(tables["Scan"]), fetch_sorted(scan()))


@pytest.mark.usefixtures("link_environment")
def test_a_parent_the_link_user_cannot_read_is_a_clear_error(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    unreadable_source_schema: str,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    hidden = source_admin.Schema(unreadable_source_schema)
    schema = source_admin.Schema(schema_names.source)

    @hidden
    class Species(dj.Lookup):  # type: ignore[misc]
        definition = """
        species : varchar(16)
        """

    @schema
    class Animal(dj.Manual):  # type: ignore[misc]
        definition = """
        animal_id : int32
        ---
        -> Species
        """

    with pytest.raises(SourceError, match=r"species.*cannot read.*grant it SELECT"):
        link_class(endpoints, schema_names, "Animal")
    assert destination_tables(destination_admin, schema_names.destination) == {}


@pytest.mark.usefixtures("link_environment")
def test_an_auto_increment_key_takes_the_source_values(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    schema = source_admin.Schema(schema_names.source)

    @schema
    class Event(dj.Manual):  # type: ignore[misc]
        definition = """
        event_id : int unsigned auto_increment
        ---
        note : varchar(16)
        """

    Event.insert([{"note": "first"}, {"note": "second"}, {"note": "third"}])
    (Event() & "event_id = 1").delete_quick()
    Event.insert1({"event_id": 1000, "note": "far"})

    table = link_class(endpoints, schema_names, "Event")
    pull_in_process(table)

    extra = destination_admin.connection.query(
        "SELECT extra FROM information_schema.columns WHERE table_schema = %s"
        " AND table_name = 'event' AND column_name = 'event_id'",
        args=(schema_names.destination,),
    ).fetchone()[0]
    assert "auto_increment" not in extra.lower()
    assert table.heading.attributes["event_id"].type == "int unsigned"
    assert sorted(table().to_arrays("event_id").tolist()) == [2, 3, 1000]


# -- destination tables that exist already ---------------------------------------


def declare_subject_source(source_admin: dj.Instance, schema_name: str) -> None:
    """Declare a small source table with a part."""
    schema = source_admin.Schema(schema_name)

    @schema
    class Subject(dj.Manual):  # type: ignore[misc]
        definition = """
        subject_id : int32
        ---
        name : varchar(16)
        weight = null : float32
        count = 1 : int16
        sex = "U" : enum('F', 'M', 'U')
        """

        class Note(dj.Part):  # type: ignore[misc]
            definition = """
            -> master
            note_idx : int16
            ---
            text : varchar(64)
            """


MASTER = """
subject_id : int32
---
name : varchar(16)
weight = null : float32
count = 1 : int16
sex = "U" : enum('F','M','U')
"""
NOTE = """
-> master
note_idx : int16
---
text : varchar(64)
"""

MISMATCHES = {
    "type": (MASTER.replace("name : varchar(16)", "name : varchar(32)"), NOTE, "name"),
    "key": (
        MASTER.replace("---\nname : varchar(16)", "name : varchar(16)\n---"),
        NOTE,
        "name",
    ),
    "nullable": (MASTER.replace("weight = null", "weight"), NOTE, "weight"),
    "default": (MASTER.replace("count = 1", "count = 2"), NOTE, "count"),
    "missing": (MASTER.replace("count = 1 : int16\n", ""), NOTE, "count"),
    "extra": (MASTER + "color : varchar(8)\n", NOTE, "color"),
    "enum": (MASTER.replace("'F','M','U'", "'F','M','U','X'"), NOTE, "sex"),
    "part": (MASTER, NOTE.replace("varchar(64)", "varchar(65)"), "text"),
}


def declare_destination_by_hand(
    destination_admin: dj.Instance, schema_name: str, master: str, note: str
) -> None:
    """Declare the destination tables as the destination lab might have."""
    schema = destination_admin.Schema(schema_name)
    part = type("Note", (dj.Part,), {"definition": note})
    schema(type("Subject", (dj.Manual,), {"definition": master, "Note": part}))


@pytest.mark.parametrize("difference", sorted(MISMATCHES))
@pytest.mark.usefixtures("link_environment")
def test_an_existing_destination_with_another_heading_is_refused(
    difference: str,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    declare_subject_source(source_admin, schema_names.source)
    master, note, attribute = MISMATCHES[difference]
    declare_destination_by_hand(
        destination_admin, schema_names.destination, master, note
    )
    before = destination_tables(destination_admin, schema_names.destination)
    table = "subject__note" if difference == "part" else "subject"
    message = rf"`{schema_names.destination}`.`{table}` differs.*\b{attribute}:"

    with pytest.raises(DestinationError, match=message):
        link_class(endpoints, schema_names, "Subject")

    assert destination_tables(destination_admin, schema_names.destination) == before


@pytest.mark.usefixtures("link_environment")
def test_a_refused_destination_leaves_the_source_server_unchanged(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    declare_subject_source(source_admin, schema_names.source)
    master, note, _attribute = MISMATCHES["type"]
    declare_destination_by_hand(
        destination_admin, schema_names.destination, master, note
    )

    with pytest.raises(DestinationError):
        link_class(endpoints, schema_names, "Subject")

    helper_schemas = source_admin.connection.query(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s",
        args=(schema_names.helper,),
    ).fetchone()[0]
    assert helper_schemas == 0


@pytest.mark.usefixtures("link_environment")
def test_a_missing_part_is_checked_before_anything_is_declared(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    declare_subject_source(source_admin, schema_names.source)
    destination = destination_admin.Schema(schema_names.destination)
    destination(
        type(
            "Subject",
            (dj.Manual,),
            {"definition": MASTER.replace("name : varchar(16)", "name : char(16)")},
        )
    )
    before = destination_tables(destination_admin, schema_names.destination)

    with pytest.raises(DestinationError, match="name: destination has name : char"):
        link_class(endpoints, schema_names, "Subject")

    after = destination_tables(destination_admin, schema_names.destination)
    assert after == before
    assert "subject__note" not in after


@pytest.mark.usefixtures("link_environment")
def test_an_existing_destination_with_the_same_heading_is_reused(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    declare_subject_source(source_admin, schema_names.source)
    # Spacing and letter case of a type are not differences.
    declare_destination_by_hand(
        destination_admin,
        schema_names.destination,
        MASTER.replace("varchar(16)", "VARCHAR( 16 )"),
        NOTE,
    )
    before = destination_tables(destination_admin, schema_names.destination)

    first = link_class(endpoints, schema_names, "Subject")
    again = link_class(endpoints, schema_names, "Subject")

    assert first.full_table_name == again.full_table_name
    assert destination_tables(destination_admin, schema_names.destination) == before


# -- grants and missing source tables ----------------------------------------------


@pytest.mark.usefixtures("link_environment")
def test_a_helper_schema_without_grants_names_the_missing_grant(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    unreadable_source_schema: str,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    declare_subject_source(source_admin, schema_names.source)
    grant = (
        rf"GRANT ALL PRIVILEGES ON `{unreadable_source_schema}`\.\*"
        rf" TO '{endpoints.link_user}'@'%'"
    )

    with pytest.raises(SourceError, match=grant):
        link_class(
            endpoints, schema_names, "Subject", helper_schema=unreadable_source_schema
        )

    exists = source_admin.connection.query(
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s",
        args=(unreadable_source_schema,),
    ).fetchone()[0]
    assert exists == 0
    assert destination_tables(destination_admin, schema_names.destination) == {}


@pytest.mark.usefixtures("link_environment")
def test_a_read_only_helper_schema_names_the_missing_grant(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    declare_subject_source(source_admin, schema_names.source)
    source_schema = schema_names.source
    before = source_admin.connection.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        args=(source_schema,),
    ).fetchall()

    with pytest.raises(
        SourceError, match=rf"GRANT ALL PRIVILEGES ON `{source_schema}`"
    ):
        link_class(endpoints, schema_names, "Subject", helper_schema=source_schema)

    after = source_admin.connection.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        args=(source_schema,),
    ).fetchall()
    assert sorted(after) == sorted(before)
    assert destination_tables(destination_admin, schema_names.destination) == {}


@pytest.mark.usefixtures("link_environment")
def test_a_missing_source_schema_is_a_clear_error(
    endpoints: Endpoints, schema_names: SchemaNames
) -> None:
    with pytest.raises(SourceError, match="does not exist or the link user may not"):
        link_class(endpoints, schema_names, "Subject")


@pytest.mark.usefixtures("link_environment")
def test_a_missing_source_table_is_a_clear_error(
    endpoints: Endpoints, schema_names: SchemaNames, source_admin: dj.Instance
) -> None:
    declare_subject_source(source_admin, schema_names.source)

    with pytest.raises(SourceError, match=r"no table for class 'Session'.*Subject"):
        link_class(endpoints, schema_names, "Session")


def test_tables_of_two_tiers_with_one_class_name_are_refused(
    schema_names: SchemaNames, source_admin: dj.Instance
) -> None:
    schema = source_admin.Schema(schema_names.source)
    for base in (dj.Manual, dj.Lookup):
        schema(type("Unit", (base,), {"definition": "unit_id : int32\n"}))

    with pytest.raises(SourceError, match="several tables for class 'Unit'"):
        find_source_tables(source_admin.connection, schema_names.source, "Unit")
