"""The copy of stored objects between stores, on the real servers and real stores.

Each test runs with file stores in temporary folders and with S3 stores served
by moto on a local port. The source rows are written by the source lab's own
DataJoint; the link then selects them raw, copies their objects, inserts them
raw, and the destination's DataJoint must read them as the source's does.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datajoint as dj
import pytest
from datajoint.hash_registry import get_store_backend
from datajoint.storage import StorageBackend

from link.adapters.objects import StoredObjects, schema_addressed_path
from link.adapters.servers import open_destination, open_source, split_host
from link.adapters.tables import declare_destination, find_source_tables, quote
from link.config import LinkSettings
from link.errors import ConfigurationError, DestinationError, SourceError
from tests.conftest import SchemaNames
from tests.servers import Endpoints
from tests.stores import (
    ATTACHMENTS,
    SourcePipeline,
    create_bucket,
    declare_source,
    decoded,
    file_store,
    fill_source,
    moto_s3,
    new_bucket_name,
    s3_store,
)

pytestmark = pytest.mark.integration

SOURCE_STORE = "lab_raw"
DESTINATION_STORE = "our_raw"
STORES = {SOURCE_STORE: DESTINATION_STORE}
ROWS = {"session": 3, "session__trial": 9, "session__stimulus": 6}

Tables = list[tuple[Any, str]]


@dataclass(frozen=True)
class Stores:
    """The specs of the source lab's store and of ours."""

    source: dict[str, Any]
    destination: dict[str, Any]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """Serve S3 locally for the tests of this module."""
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(params=["file", "s3"])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Stores:
    """Configure both stores in dj.config.stores, as the link's users do."""
    if request.param == "file":
        found = Stores(
            source=file_store(tmp_path / "source-store"),
            destination=file_store(tmp_path / "destination-store"),
        )
    else:
        endpoint: str = request.getfixturevalue("s3_endpoint")
        found = Stores(
            source=s3_store(endpoint, new_bucket_name()),
            destination=s3_store(endpoint, new_bucket_name()),
        )
        create_bucket(found.source)
        create_bucket(found.destination)
    monkeypatch.setitem(dj.config.stores, SOURCE_STORE, found.source)
    monkeypatch.setitem(dj.config.stores, DESTINATION_STORE, found.destination)
    return found


def instance(
    endpoints: Endpoints, side: str, stores: dict[str, Any], **settings: Any
) -> dj.Instance:
    """Connect as the link does (link user, destination user) with given stores."""
    if side == "source":
        host, port = split_host(endpoints.source_host)
        user, password = endpoints.link_user, endpoints.link_password
    else:
        host, port = endpoints.destination_host, endpoints.destination_port
        user, password = endpoints.destination_user, endpoints.destination_password
    return dj.Instance(
        host, user, password, port=port, safemode=False, stores=stores, **settings
    )


@pytest.fixture
def pipeline(
    endpoints: Endpoints, schema_names: SchemaNames, stores: Stores, tmp_path: Path
) -> Iterator[SourcePipeline]:
    """Declare and fill the source tables as the source lab's admin."""
    host, port = split_host(endpoints.source_host)
    writer = dj.Instance(
        host,
        endpoints.source_admin_user,
        endpoints.source_admin_password,
        port=port,
        safemode=False,
        stores={SOURCE_STORE: stores.source},
        download_path=str(tmp_path / "writer-downloads"),
    )
    pipeline = declare_source(writer, schema_names.source, SOURCE_STORE)
    fill_source(pipeline, writer, SOURCE_STORE, tmp_path / "files")
    yield pipeline
    writer.connection.close()


@dataclass(frozen=True)
class Link:
    """The link's two connections, opened by the library from dj.config."""

    source: dj.Instance
    destination: dj.Instance


@pytest.fixture
def link(
    endpoints: Endpoints,
    stores: Stores,
    pipeline: SourcePipeline,
    link_environment: None,
) -> Iterator[Link]:
    """Open the link's connections the way the library does."""
    opened = Link(
        open_source(endpoints.source_host, LinkSettings()), open_destination()
    )
    yield opened
    opened.source.connection.close()
    opened.destination.connection.close()


def declare(link: Link, names: SchemaNames, stores: dict[str, str]) -> Tables:
    """Declare the destination tables; return (source, destination) table pairs."""
    found = find_source_tables(link.source.connection, names.source, "Session")
    declare_destination(
        link.destination,
        link.source.connection,
        names.destination,
        "Session",
        found,
        stores,
        (),
        {},
    )
    return [
        (
            dj.FreeTable(link.source.connection, quote(names.source, name)),
            quote(names.destination, name),
        )
        for name in (found.master, *found.parts)
    ]


def part(tables: Tables, name: str) -> tuple[Any, str]:
    """Return the (source, destination) pair of a part table."""
    (found,) = [pair for pair in tables if pair[1].endswith(f"__{name}`")]
    return found


def columns_of(table: Any) -> list[str]:
    return [
        name for name, attr in table.heading.attributes.items() if not attr.is_hidden
    ]


def select(table: Any, columns: list[str]) -> list[tuple[Any, ...]]:
    names = ", ".join(f"`{name}`" for name in columns)
    key = ", ".join(f"`{name}`" for name in table.primary_key)
    rows = table.connection.query(
        f"SELECT {names} FROM {table.full_table_name} ORDER BY {key}"
    ).fetchall()
    return list(rows)


def copy_rows(objects: StoredObjects, link: Link, tables: Tables) -> None:
    """Copy every row as the gateway does: raw select, rewrite, raw insert."""
    batches = []
    for source_table, destination_table in tables:
        columns = columns_of(source_table)
        rows = select(source_table, columns)
        batches.append(
            (
                destination_table,
                columns,
                objects.rewrite(source_table, destination_table, columns, rows),
            )
        )
    connection = link.destination.connection
    with connection.transaction:
        cursor = connection._conn.cursor()
        for table, columns, rows in batches:
            names = ", ".join(f"`{name}`" for name in columns)
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


def raw_metadata(instance: dj.Instance, full_name: str) -> list[dict[str, Any]]:
    """Return the stored columns' JSON of a table, parsed."""
    table = dj.FreeTable(instance.connection, full_name)
    stored = [
        name
        for name, attr in table.heading.attributes.items()
        if attr.codec is not None and attr.store is not None
    ]
    return [
        json.loads(value)
        for row in select(table, stored)
        for value in row
        if value is not None
    ]


def test_rows_read_the_same_on_the_destination(
    link: Link, schema_names: SchemaNames, tmp_path: Path
) -> None:
    tables = declare(link, schema_names, STORES)
    objects = StoredObjects(link.source, link.destination, STORES)

    objects.check(tables)
    copy_rows(objects, link, tables)
    objects.close()

    for source_table, destination_table in tables:
        name = source_table.full_table_name
        expected = decoded(link.source, name, tmp_path / "source" / name)
        actual = decoded(link.destination, destination_table, tmp_path / "dst" / name)
        table = destination_table.split(".")[1].strip("`")
        assert len(expected) == ROWS[table]
        assert actual == expected, destination_table
        for row in actual:
            for attachment in ATTACHMENTS & set(row):
                if row[attachment] is not None:
                    assert row[attachment][1] in ("protocol.txt", "leaflet.txt")


def test_metadata_points_at_the_destination_layout(
    link: Link, schema_names: SchemaNames
) -> None:
    tables = declare(link, schema_names, STORES)
    objects = StoredObjects(link.source, link.destination, STORES)

    copy_rows(objects, link, tables)

    destination = schema_names.destination
    for source_table, destination_table in tables:
        source = raw_metadata(link.source, source_table.full_table_name)
        copied = raw_metadata(link.destination, destination_table)
        table = destination_table.split(".")[1].strip("`")
        assert len(copied) == len(source) > 0
        for before, after in zip(source, copied, strict=True):
            assert after["store"] == DESTINATION_STORE
            unchanged = {key: value for key, value in after.items() if key != "store"}
            if "hash" in before:
                assert after["path"] == f"_hash/{destination}/{before['hash']}"
                assert after["schema"] == destination
                del unchanged["path"], unchanged["schema"]
            elif before["path"].startswith("_schema/"):
                prefix = f"_schema/{destination}/{table}/"
                assert after["path"].startswith(prefix)
                # The token, key segments and extension are kept.
                assert after["path"].split("/")[3:] == before["path"].split("/")[3:]
                del unchanged["path"]
            assert unchanged == {
                key: value for key, value in before.items() if key in unchanged
            }
            assert set(after) == set(before)


def test_garbage_collector_sees_copies_as_referenced_then_as_orphans(
    link: Link, schema_names: SchemaNames
) -> None:
    tables = declare(link, schema_names, STORES)
    copy_rows(StoredObjects(link.source, link.destination, STORES), link, tables)
    schema = link.destination.Schema(schema_names.destination)
    collector = dj.gc.GarbageCollector(schema, store=DESTINATION_STORE)
    backend = get_store_backend(DESTINATION_STORE, link.destination.config)

    kept = collector.collect(dry_run=False)
    for _source_table, destination_table in reversed(tables):
        link.destination.connection.query(f"DELETE FROM {destination_table}")
    collected = collector.collect(dry_run=False)

    assert kept["deleted"] == kept["hash_paths_orphaned"] == 0
    assert kept["schema_paths_orphaned"] == 0
    assert kept["hash_paths_referenced"] == kept["hash_paths_stored"] > 0
    # A folder is one reference but three stored files: two and its manifest.
    assert kept["schema_paths_stored"] > kept["schema_paths_referenced"] > 0
    assert collected["hash_paths_deleted"] == kept["hash_paths_stored"]
    assert collected["schema_paths_deleted"] == kept["schema_paths_stored"]
    assert collected["errors"] == 0
    assert collector.collect()["hash_paths_stored"] == 0
    # File paths are the users' own files: the collector leaves them alone.
    assert backend.exists("raw/session1.bin")
    assert backend.exists("notes/1-movie.txt")


def test_repeated_batch_copies_nothing_again(
    link: Link,
    schema_names: SchemaNames,
    stores: Stores,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tables = declare(link, schema_names, STORES)
    objects = StoredObjects(link.source, link.destination, STORES)
    source_table, destination_table = part(tables, "stimulus")
    columns = columns_of(source_table)
    rows = select(source_table, columns)
    caplog.set_level(logging.DEBUG, logger="link.adapters.objects")

    first = objects.rewrite(source_table, destination_table, columns, rows)
    stamps = _modification_times(stores.destination)
    second = objects.rewrite(source_table, destination_table, columns, rows)

    assert second == first
    assert _modification_times(stores.destination) == stamps
    # 6 folders, 3 arrays, 3 file paths, 3 blobs, 2 hashes, 1 shared attachment
    assert [record.getMessage().split(" of `")[0] for record in caplog.records] == [
        "copied 18 of the 18 objects of 6 row(s)",
        "copied 0 of the 18 objects of 6 row(s)",
    ]


def test_object_removed_from_the_destination_is_copied_again(
    link: Link, schema_names: SchemaNames
) -> None:
    tables = declare(link, schema_names, STORES)
    objects = StoredObjects(link.source, link.destination, STORES)
    copy_rows(objects, link, tables)
    backend = get_store_backend(DESTINATION_STORE, link.destination.config)
    source_table, destination_table = part(tables, "trial")
    (trace, *_) = [
        meta["path"]
        for meta in raw_metadata(link.destination, destination_table)
        if "hash" in meta
    ]
    backend.remove(trace)

    columns = columns_of(source_table)
    objects.rewrite(
        source_table, destination_table, columns, select(source_table, columns)
    )

    assert backend.exists(trace)


def _modification_times(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["protocol"] == "file":
        root = Path(spec["location"])
        return {
            str(path): path.stat().st_mtime_ns
            for path in root.rglob("*")
            if path.is_file()
        }
    storage = StorageBackend(spec)
    storage.fs.invalidate_cache()
    return {
        name: info["LastModified"]
        for name, info in storage.fs.find(spec["bucket"], detail=True).items()
    }


@pytest.mark.parametrize("layout", ["subfolded", "partitioned"])
def test_destination_store_layout_is_followed(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    pipeline: SourcePipeline,
    stores: Stores,
    link_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    layout: str,
) -> None:
    settings: dict[str, Any] = {"hash_prefix": "blobs", "schema_prefix": "objects"}
    if layout == "subfolded":
        settings["subfolding"] = [2, 3]
    else:
        settings["partition_pattern"] = "{session_id}"
    spec = {**stores.destination, **settings}
    if spec["protocol"] == "s3":
        spec["bucket"] = new_bucket_name()
        create_bucket(spec)
    monkeypatch.setitem(dj.config.stores, DESTINATION_STORE, spec)
    link = Link(open_source(endpoints.source_host, LinkSettings()), open_destination())
    tables = declare(link, schema_names, STORES)

    copy_rows(StoredObjects(link.source, link.destination, STORES), link, tables)

    destination = schema_names.destination
    for source_table, destination_table in tables:
        name = source_table.full_table_name
        for meta in raw_metadata(link.destination, destination_table):
            if "hash" in meta:
                folds = (
                    f"{meta['hash'][:2]}/{meta['hash'][2:5]}/"
                    if layout == "subfolded"
                    else ""
                )
                assert meta["path"] == f"blobs/{destination}/{folds}{meta['hash']}"
            elif meta["path"].startswith("objects/"):
                if layout == "partitioned":
                    assert meta["path"].startswith("objects/session_id=")
                    assert f"/{destination}/" in meta["path"]
                else:
                    assert meta["path"].startswith(f"objects/{destination}/")
        assert decoded(link.destination, destination_table, tmp_path / "d" / name) == (
            decoded(link.source, name, tmp_path / "s" / name)
        )
    link.source.connection.close()
    link.destination.connection.close()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "_schema/src/session__trial/session_id=1/trial_idx=2/clip_Ab3.txt",
            "objects/dst/t/session_id=1/trial_idx=2/clip_Ab3.txt",
        ),
        (
            "_schema/trial_idx=2/src/session__trial/session_id=1/clip_Ab3.txt",
            "objects/dst/t/session_id=1/trial_idx=2/clip_Ab3.txt",
        ),
        (
            "src/session__trial/session_id=1/trial_idx=2/movie_Ab3",
            "objects/dst/t/session_id=1/trial_idx=2/movie_Ab3",
        ),
    ],
    ids=["plain", "partitioned", "legacy root layout"],
)
def test_schema_addressed_path_keeps_key_and_token(path: str, expected: str) -> None:
    moved = schema_addressed_path(
        path,
        source_prefix="_schema",
        destination_prefix="objects",
        partition_pattern=None,
        key_order=("session_id", "trial_idx"),
        schema="dst",
        table="t",
    )

    assert moved == expected
    assert (
        schema_addressed_path(
            path,
            source_prefix="_schema",
            destination_prefix="",
            partition_pattern="{trial_idx}",
            key_order=("session_id", "trial_idx"),
            schema="dst",
            table="t",
        )
        == "trial_idx=2/dst/t/session_id=1/" + expected.rsplit("/", 1)[1]
    )


# -- errors -------------------------------------------------------------------------


@pytest.fixture
def tables(link: Link, schema_names: SchemaNames) -> Tables:
    """Declare the destination tables with the right stores."""
    return declare(link, schema_names, STORES)


def test_check_refuses_a_store_missing_from_the_mapping(
    link: Link, tables: Tables
) -> None:
    objects = StoredObjects(link.source, link.destination, {"elsewhere": "ours"})

    with pytest.raises(
        ConfigurationError,
        match=r"Store 'lab_raw' of the stored attribute 'summary' of"
        r" `src_\w+`\.`session` is missing from the link's stores mapping",
    ):
        objects.check(tables)


def test_check_refuses_a_store_the_source_side_lacks(
    endpoints: Endpoints, link: Link, tables: Tables, stores: Stores
) -> None:
    source = instance(endpoints, "source", {DESTINATION_STORE: stores.destination})
    objects = StoredObjects(source, link.destination, STORES)

    with pytest.raises(
        ConfigurationError,
        match=r"Store 'lab_raw', used by the stored attribute 'summary' of"
        r" `src_\w+`\.`session`, is not configured on the source side",
    ):
        objects.check(tables)


def test_check_refuses_a_store_the_destination_side_lacks(
    endpoints: Endpoints, link: Link, tables: Tables, stores: Stores
) -> None:
    destination = instance(endpoints, "destination", {SOURCE_STORE: stores.source})
    objects = StoredObjects(link.source, destination, STORES)

    with pytest.raises(
        ConfigurationError,
        match=r"Store 'our_raw', used by the stored attribute 'summary' of"
        r" `src_\w+`\.`session`, is not configured on the destination side",
    ):
        objects.check(tables)


@pytest.mark.parametrize("side", ["source", "destination"])
def test_check_refuses_a_missing_file_location(
    endpoints: Endpoints, link: Link, tables: Tables, tmp_path: Path, side: str
) -> None:
    missing = {"protocol": "file", "location": str(tmp_path / "nowhere")}
    specs = {SOURCE_STORE: dict(dj.config.stores[SOURCE_STORE])}
    specs[DESTINATION_STORE] = dict(dj.config.stores[DESTINATION_STORE])
    specs[SOURCE_STORE if side == "source" else DESTINATION_STORE] = missing
    objects = StoredObjects(
        instance(endpoints, "source", specs),
        instance(endpoints, "destination", specs),
        STORES,
    )
    store = SOURCE_STORE if side == "source" else DESTINATION_STORE

    with pytest.raises(
        SourceError if side == "source" else DestinationError,
        match=rf"Store '{store}' on the {side} side, used by the stored attribute"
        r" 'summary' of `src_\w+`\.`session`, cannot be reached: FileNotFoundError",
    ):
        objects.check(tables)


@pytest.mark.parametrize("fault", ["no bucket", "endpoint down"])
def test_check_refuses_an_unreachable_s3_store(
    endpoints: Endpoints,
    link: Link,
    tables: Tables,
    s3_endpoint: str,
    fault: str,
) -> None:
    endpoint = s3_endpoint
    if fault == "endpoint down":
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            endpoint = f"127.0.0.1:{closed.getsockname()[1]}"
    specs = {
        SOURCE_STORE: dict(dj.config.stores[SOURCE_STORE]),
        DESTINATION_STORE: s3_store(endpoint, new_bucket_name()),
    }
    objects = StoredObjects(
        link.source, instance(endpoints, "destination", specs), STORES
    )
    started = time.monotonic()

    with pytest.raises(
        DestinationError,
        match=r"Store 'our_raw' on the destination side, used by the stored attribute"
        r" 'summary' of `src_\w+`\.`session`, cannot be reached: "
        + ("FileNotFoundError" if fault == "no bucket" else "ConnectionRefusedError"),
    ):
        objects.check(tables)
    assert time.monotonic() - started < 5


def test_check_refuses_a_destination_column_in_another_store(
    link: Link, schema_names: SchemaNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(dj.config.stores, "other", dj.config.stores[DESTINATION_STORE])
    tables = declare(link, schema_names, {SOURCE_STORE: "other"})
    objects = StoredObjects(link.source, link.destination, STORES)

    with pytest.raises(
        DestinationError,
        match=r"The destination table `dst_\w+`\.`session` has <blob@other> for the"
        r" stored attribute 'summary' .* must be declared in store 'our_raw'",
    ):
        objects.check(tables)


def test_check_refuses_a_missing_destination_table(link: Link, tables: Tables) -> None:
    objects = StoredObjects(link.source, link.destination, STORES)
    source_table, destination_table = tables[0]

    with pytest.raises(DestinationError, match="cannot be read"):
        objects.check([(source_table, destination_table.replace("session", "nope"))])


def test_rewrite_refuses_an_object_missing_from_the_source_store(
    link: Link, tables: Tables
) -> None:
    objects = StoredObjects(link.source, link.destination, STORES)
    source_table, destination_table = tables[0]
    columns = columns_of(source_table)
    rows = select(source_table, columns)
    (path, *_) = [
        meta["path"]
        for meta in raw_metadata(link.source, source_table.full_table_name)
        if "hash" in meta
    ]
    get_store_backend(SOURCE_STORE, link.source.config).remove(path)

    with pytest.raises(SourceError, match=rf"The object '{path}' .* is missing"):
        objects.rewrite(source_table, destination_table, columns, rows)


def test_rewrite_refuses_to_overwrite_a_different_file_at_a_file_path(
    link: Link, tables: Tables
) -> None:
    objects = StoredObjects(link.source, link.destination, STORES)
    source_table, destination_table = tables[0]
    columns = columns_of(source_table)
    rows = select(source_table, columns)
    backend = get_store_backend(DESTINATION_STORE, link.destination.config)
    backend.put_buffer(b"the destination lab's own file", "raw/session2.bin")

    with pytest.raises(
        DestinationError,
        match=r"The file path 'raw/session2.bin' of the stored attribute 'raw_file'"
        r" .* already holds a different file",
    ):
        objects.rewrite(source_table, destination_table, columns, rows)
    assert backend.get_buffer("raw/session2.bin") == b"the destination lab's own file"
