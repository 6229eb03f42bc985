"""Contains the copy of stored objects from the source's stores to the destination's.

A stored attribute (``<blob@s>``, ``<attach@s>``, ``<hash@s>``, ``<npy@s>``,
``<object@s>``, ``<filepath@s>``) keeps JSON metadata in its column and its
bytes in a store. Rows move as raw SQL (see the gateway), so their metadata is
rewritten here to point at copies made in the destination's stores. The bytes
are copied as they are, never decoded and encoded again: that keeps attachment
names, hashes and tokens, and is about ten times faster (design notes, §3).

The copies are laid out as DataJoint itself would have written them on the
destination: hash-addressed objects in the destination schema's hash section
(with the destination store's subfolding), schema-addressed objects under the
destination schema and table, file paths at the same relative path. DataJoint's
garbage collector on the destination therefore counts the copies as referenced
while their rows exist, and as orphans once the rows are deleted.

Objects are copied before their rows are inserted. A batch whose insert fails
leaves copies without rows, which the destination's garbage collector removes;
a repeated batch finds its objects present and copies nothing again.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import re
import socket
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import datajoint as dj
from datajoint.errors import DataJointError, MissingExternalFile
from datajoint.hash_registry import build_hash_path, compute_hash, get_store_backend
from datajoint.storage import StorageBackend

from link.errors import ConfigurationError, DestinationError, LinkError, SourceError

logger = logging.getLogger(__name__)

WORKERS = 8
"""Objects copied at once: stores are slow per request far more than per byte."""

BUFFER_LIMIT = 64 * 1024 * 1024
"""Objects up to this size are copied in memory, larger ones through a file."""

PROBE_TIMEOUT = 5.0
"""Seconds to wait for a network store's endpoint to accept a connection."""

MANIFEST = ".manifest.json"
"""Suffix of the file DataJoint writes next to a folder object, listing its files."""

_FULL_NAME = re.compile(r"^`(?P<schema>[^`]+)`\.`(?P<table>[^`]+)`$")
_PARTITION = re.compile(r"\{(\w+)\}")


class Kind(enum.Enum):
    """How DataJoint lays out the objects of a stored attribute in its store."""

    HASH = "hash-addressed"
    SCHEMA = "schema-addressed"
    FILEPATH = "file path"


class Side(enum.Enum):
    """Which server's configuration a store is looked up in."""

    SOURCE = "source"
    DESTINATION = "destination"


@dataclass(frozen=True)
class StoredColumn:
    """A stored attribute of a source table and how its objects are laid out."""

    name: str
    kind: Kind
    store: str


@dataclass(frozen=True)
class ObjectCopy:
    """One object (a file, or a folder of files) to copy between stores."""

    kind: Kind
    source_store: str | None
    source_path: str
    destination_store: str
    destination_path: str
    is_dir: bool
    size: int | None
    content_hash: str | None
    where: str


def split_full_name(full_name: str) -> tuple[str, str]:
    """Split a quoted full table name into its schema and table names."""
    match = _FULL_NAME.match(full_name)
    if match is None:
        raise ConfigurationError(
            f"{full_name!r} is not a full table name like `schema`.`table`."
        )
    return match["schema"], match["table"]


def stored_columns(table: dj.FreeTable) -> dict[str, StoredColumn | None]:
    """Return a table's stored attributes; None marks one that cannot be copied."""
    found: dict[str, StoredColumn | None] = {}
    for name, attr in table.heading.attributes.items():
        if attr.codec is None or attr.store is None:
            continue
        if attr.is_hash_object:
            found[name] = StoredColumn(name, Kind.HASH, attr.store)
        elif attr.is_schema_object:
            found[name] = StoredColumn(name, Kind.SCHEMA, attr.store)
        elif attr.codec.name == "filepath":
            found[name] = StoredColumn(name, Kind.FILEPATH, attr.store)
        else:
            found[name] = None
    return found


def schema_addressed_path(
    path: str,
    *,
    source_prefix: str,
    destination_prefix: str,
    partition_pattern: str | None,
    key_order: Sequence[str],
    schema: str,
    table: str,
) -> str:
    """Move a schema-addressed path to another schema and table, keeping its token.

    DataJoint writes ``{prefix}/{partition}/{schema}/{table}/{key}/{field}_{token}``
    where partition and key are ``attribute=value`` segments; the destination
    store's prefix and partition pattern decide where the key segments go.
    """
    prefix = source_prefix.strip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) + 1 :]
    segments = path.split("/")
    start = 0
    while start < len(segments) and "=" in segments[start]:
        start += 1
    if len(segments) < start + 3:
        raise SourceError(f"{path!r} is not a schema-addressed object path.")
    keys = {
        segment.partition("=")[0]: segment
        for segment in segments[:start] + segments[start + 2 : -1]
    }
    partitioned = [
        name for name in _PARTITION.findall(partition_pattern or "") if name in keys
    ]
    order = {name: index for index, name in enumerate(key_order)}
    rest = sorted(
        (name for name in keys if name not in partitioned),
        key=lambda name: order.get(name, len(order)),
    )
    head = [destination_prefix.strip("/")] if destination_prefix.strip("/") else []
    return "/".join(
        [
            *head,
            *(keys[name] for name in partitioned),
            schema,
            table,
            *(keys[name] for name in rest),
            segments[-1],
        ]
    )


def _label(store: str | None) -> str:
    return repr(store) if store else "(default)"


class StoredObjects:
    """Copies the stored objects of a link's rows from source to destination stores.

    ``stores`` maps each source store name to the destination store that
    replaces it (the empty name stands for the default store, as in ``<blob@>``).
    Copies run on a small pool of threads, each with its own store backends.
    """

    def __init__(
        self, source: dj.Instance, destination: dj.Instance, stores: Mapping[str, str]
    ) -> None:
        """Keep both sides' configurations and the mapping of store names."""
        self._instances = {Side.SOURCE: source, Side.DESTINATION: destination}
        self._stores = dict(stores)
        self._columns: dict[str, dict[str, StoredColumn | None]] = {}
        self._specs: dict[tuple[Side, str | None], dict[str, Any]] = {}
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def close(self) -> None:
        """Stop the copying threads; a later copy starts new ones."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # -- configuration -----------------------------------------------------------------

    def stored(self, table: dj.FreeTable) -> dict[str, StoredColumn | None]:
        """Return the stored attributes of a source table (cached per table)."""
        name: str = table.full_table_name
        if name not in self._columns:
            self._columns[name] = stored_columns(table)
        return self._columns[name]

    def spec(self, side: Side, store: str | None) -> dict[str, Any]:
        """Return a store's specification on one side, with DataJoint's defaults."""
        key = (side, store or None)
        if key not in self._specs:
            # An empty store name (``<blob@>``) means the configured default.
            config = self._instances[side].config
            self._specs[key] = config.get_store_spec(store or None)
        return self._specs[key]

    def backend(self, side: Side, store: str | None) -> StorageBackend:
        """Return this thread's backend of a store on one side.

        Each thread keeps its own: fsspec gives each thread its own filesystem
        instance, and a backend keeps the one it was first given.
        """
        cache: dict[tuple[Side, str | None], StorageBackend] | None = getattr(
            self._local, "backends", None
        )
        if cache is None:
            cache = self._local.backends = {}
        key = (side, store or None)
        if key not in cache:
            cache[key] = get_store_backend(store or None, self._instances[side].config)
        return cache[key]

    def _mapped(self, column: StoredColumn, where: str) -> str:
        mapped = self._stores.get(column.store)
        if not mapped:
            raise ConfigurationError(
                f"Store {_label(column.store)} of the stored {where} is missing from"
                " the link's stores mapping (source store to destination store)."
            )
        return mapped

    # -- check -------------------------------------------------------------------------

    def check(
        self,
        tables: Sequence[tuple[dj.FreeTable, str]],
        *,
        destination_declared: bool = True,
    ) -> None:
        """Raise before anything is written when a stored attribute cannot be copied.

        Each stored attribute needs its store in the stores mapping, configured
        on the source side, the mapped store configured on the destination side,
        and the destination column declared in the mapped store. Each store in
        use is then probed once, cheaply: a file location must be a directory
        the link may use, an S3 endpoint must answer and its bucket exist.
        """
        users: dict[tuple[Side, str], str] = {}
        for source_table, destination_table in tables:
            columns = self.stored(source_table)
            if not columns:
                continue
            declared = (
                self._destination_attributes(destination_table)
                if destination_declared
                else {}
            )
            for name, column in columns.items():
                where = f"attribute {name!r} of {source_table.full_table_name}"
                if column is None:
                    raise SourceError(
                        f"The stored {where} has type"
                        f" {source_table.heading.attributes[name].type}, whose"
                        " objects the link cannot copy between stores."
                    )
                mapped = self._mapped(column, where)
                self._require(Side.SOURCE, column.store, where)
                self._require(Side.DESTINATION, mapped, where)
                attribute = declared.get(name)
                if destination_declared and (
                    attribute is None or attribute.store != mapped
                ):
                    found = "no such attribute" if attribute is None else attribute.type
                    raise DestinationError(
                        f"The destination table {destination_table} has {found} for"
                        f" the stored {where}; the stores mapping moves store"
                        f" {_label(column.store)} to {mapped!r}, so it must be"
                        f" declared in store {mapped!r}."
                    )
                users.setdefault((Side.SOURCE, column.store), where)
                users.setdefault((Side.DESTINATION, mapped), where)
        for (side, store), where in users.items():
            self._probe(side, store, where)

    def _destination_attributes(self, full_name: str) -> dict[str, Any]:
        connection = self._instances[Side.DESTINATION].connection
        try:
            return dict(dj.FreeTable(connection, full_name).heading.attributes)
        except DataJointError as error:
            raise DestinationError(
                f"The destination table {full_name} cannot be read: {error}"
            ) from error

    def _require(self, side: Side, store: str | None, where: str) -> dict[str, Any]:
        try:
            return self.spec(side, store)
        except DataJointError as error:
            raise ConfigurationError(
                f"Store {_label(store)}, used by the stored {where}, is not"
                f" configured on the {side.value} side: {error}"
            ) from error

    def _probe(self, side: Side, store: str, where: str) -> None:
        failure = SourceError if side is Side.SOURCE else DestinationError
        try:
            probe_store(self.backend(side, store), writable=side is Side.DESTINATION)
        except ImportError as error:
            raise ConfigurationError(
                f"Store {_label(store)} on the {side.value} side, used by the stored"
                f" {where}, needs a package that is not installed: {error}"
            ) from error
        except Exception as error:
            raise failure(
                f"Store {_label(store)} on the {side.value} side, used by the stored"
                f" {where}, cannot be reached: {type(error).__name__}: {error}"
            ) from error

    # -- rewrite -----------------------------------------------------------------------

    def rewrite(
        self,
        source_table: dj.FreeTable,
        destination_table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
    ) -> list[tuple[Any, ...]]:
        """Copy the objects the rows refer to; return the rows pointing at the copies.

        rows are raw values of columns selected from source_table; the stored
        ones hold DataJoint's JSON metadata. Each object is copied once however
        many rows refer to it, and not at all when the destination has it.
        """
        stored = self.stored(source_table)
        positions: list[tuple[int, StoredColumn]] = []
        for index, name in enumerate(columns):
            if name not in stored:
                continue
            column = stored[name]
            if column is None:
                raise SourceError(
                    f"The stored attribute {name!r} of {source_table.full_table_name}"
                    " has a type whose objects the link cannot copy between stores."
                )
            positions.append((index, column))
        if not positions or not rows:
            return rows
        schema, table = split_full_name(destination_table)
        copies: dict[tuple[str, str], ObjectCopy] = {}
        rewritten: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(row)
            for index, column in positions:
                if values[index] is None:
                    continue
                values[index], copy = self._plan(
                    source_table, schema, table, column, values[index]
                )
                copies.setdefault((copy.destination_store, copy.destination_path), copy)
            rewritten.append(tuple(values))
        copied = self._run(list(copies.values()))
        logger.debug(
            "copied %d of the %d objects of %d row(s) of %s to %s",
            copied,
            len(copies),
            len(rows),
            source_table.full_table_name,
            destination_table,
        )
        return rewritten

    def _plan(
        self,
        source_table: dj.FreeTable,
        schema: str,
        table: str,
        column: StoredColumn,
        value: str | bytes,
    ) -> tuple[str, ObjectCopy]:
        where = f"attribute {column.name!r} of {source_table.full_table_name}"
        text = value.decode() if isinstance(value, bytes) else value
        try:
            metadata: dict[str, Any] = json.loads(text)
            source_path: str = metadata["path"]
        except (TypeError, ValueError, KeyError) as error:
            raise SourceError(
                f"The stored {where} holds {text!r}, not DataJoint's object metadata."
            ) from error
        store = self._mapped(column, where)
        # DataJoint decodes from the store recorded in the metadata, not from
        # the column's declared one: the bytes are where the metadata says.
        source_store = metadata.get("store") or column.store or None
        source_spec = self._require(Side.SOURCE, source_store, where)
        spec = self._require(Side.DESTINATION, store, where)
        changes: dict[str, Any] = {"store": store}
        if column.kind is Kind.HASH:
            folds = spec.get("subfolding")
            try:
                path = build_hash_path(
                    metadata["hash"],
                    schema,
                    tuple(folds) if folds else None,
                    hash_prefix=spec["hash_prefix"],
                )
            except (KeyError, DataJointError) as error:
                raise SourceError(
                    f"The stored {where} has no valid content hash: {error}"
                ) from error
            changes.update(path=path, schema=schema)
        elif column.kind is Kind.SCHEMA:
            path = schema_addressed_path(
                source_path,
                source_prefix=source_spec["schema_prefix"],
                destination_prefix=spec["schema_prefix"],
                partition_pattern=spec.get("partition_pattern"),
                key_order=source_table.primary_key,
                schema=schema,
                table=table,
            )
            changes["path"] = path
        else:
            path = source_path
            _outside_managed_sections(path, spec, store, where)
        if metadata.get("url"):
            changes["url"] = self.backend(Side.DESTINATION, store).get_url(path)
        copy = ObjectCopy(
            kind=column.kind,
            source_store=source_store,
            source_path=source_path,
            destination_store=store,
            destination_path=path,
            is_dir=bool(metadata.get("is_dir")),
            size=metadata.get("size"),
            content_hash=metadata.get("hash") if column.kind is Kind.HASH else None,
            where=where,
        )
        return json.dumps({**metadata, **changes}), copy

    def _run(self, copies: list[ObjectCopy]) -> int:
        if not copies:
            return 0
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="link-copy")
            pool = self._pool
        futures: list[Future[bool]] = [pool.submit(self._copy, copy) for copy in copies]
        copied = 0
        failure: BaseException | None = None
        for future in futures:
            # Wait for every copy, so that none still writes once this raises.
            error = future.exception()
            if error is None:
                copied += future.result()
            elif failure is None:
                failure = error
        if failure is not None:
            raise failure
        return copied

    def _copy(self, copy: ObjectCopy) -> bool:
        try:
            source = self.backend(Side.SOURCE, copy.source_store)
            destination = self.backend(Side.DESTINATION, copy.destination_store)
            if copy.is_dir:
                return copy_folder(source, destination, copy)
            if destination.exists(copy.destination_path):
                _same_file_path(destination, copy)
                return False
            _settle(destination, copy.destination_path, source, copy)
            return True
        except LinkError:
            raise
        except MissingExternalFile as error:
            raise SourceError(
                f"The object {copy.source_path!r} of the stored {copy.where} is"
                f" missing from source store {_label(copy.source_store)}: {error}"
            ) from error
        except Exception as error:
            raise DestinationError(
                f"Copying {copy.source_path!r} of the stored {copy.where} to"
                f" {copy.destination_path!r} in destination store"
                f" {copy.destination_store!r} failed: {type(error).__name__}: {error}"
            ) from error


def _outside_managed_sections(
    path: str, spec: Mapping[str, Any], store: str, where: str
) -> None:
    # DataJoint's garbage collector owns the hash and schema sections: a file
    # path copied into either could be collected as an orphan.
    normalized = path.lstrip("/")
    for key in ("hash_prefix", "schema_prefix"):
        prefix = str(spec.get(key) or "").strip("/")
        if prefix and normalized.startswith(prefix + "/"):
            raise DestinationError(
                f"The file path {path!r} of the stored {where} lies in section"
                f" {prefix!r} ({key}) of destination store {store!r}, which"
                " DataJoint manages, so it cannot be copied there."
            )


def _same_file_path(destination: StorageBackend, copy: ObjectCopy) -> None:
    # Hash and schema paths name their content (hash, token); a file path
    # names a file that the destination's users may have placed themselves.
    if copy.kind is not Kind.FILEPATH or copy.size is None:
        return
    found = destination.size(copy.destination_path)
    if found != copy.size:
        raise DestinationError(
            f"The file path {copy.destination_path!r} of the stored {copy.where}"
            f" already holds a different file ({found} bytes, not {copy.size}) in"
            f" destination store {copy.destination_store!r}; it was left as it is."
        )


def _settle(
    destination: StorageBackend, path: str, source: StorageBackend, copy: ObjectCopy
) -> None:
    try:
        copy_file(source, destination, copy)
    except OSError:
        # Another worker copying the same object at the same moment can make
        # DataJoint's atomic rename fail; the object is there all the same.
        if not destination.exists(path):
            raise


def copy_file(
    source: StorageBackend, destination: StorageBackend, copy: ObjectCopy
) -> None:
    """Copy one file; one copied in memory is first checked against its hash."""
    size = copy.size if copy.size is not None else source.size(copy.source_path)
    if size <= BUFFER_LIMIT:
        data = source.get_buffer(copy.source_path)
        if copy.content_hash is not None and compute_hash(data) != copy.content_hash:
            raise SourceError(
                f"The object {copy.source_path!r} of the stored {copy.where} does not"
                f" match its hash {copy.content_hash}: the source store holds"
                " damaged data."
            )
        destination.put_buffer(data, copy.destination_path)
        return
    with tempfile.TemporaryDirectory(prefix="link-object-") as folder:
        local = Path(folder) / "object"
        try:
            source.get_file(copy.source_path, local)
        except FileNotFoundError as error:
            raise MissingExternalFile(str(error)) from error
        destination.put_file(local, copy.destination_path)


def copy_folder(
    source: StorageBackend, destination: StorageBackend, copy: ObjectCopy
) -> bool:
    """Copy a folder object file by file, then its manifest; False if already there.

    The manifest is written last, so its presence marks a complete copy; files
    of an interrupted copy are not copied again.
    """
    manifest_path = copy.destination_path + MANIFEST
    if destination.exists(manifest_path):
        return False
    try:
        manifest: bytes | None = source.get_buffer(copy.source_path + MANIFEST)
    except MissingExternalFile:
        manifest = None
    files: list[tuple[str, int | None]]
    if manifest is not None:
        files = [
            (item["path"], item.get("size")) for item in json.loads(manifest)["files"]
        ]
    else:
        # Folders staged straight into the store have no manifest: list them.
        files = [(name, None) for name in sorted(source.get_fsmap(copy.source_path))]
        if not files:
            raise MissingExternalFile(f"No files under {copy.source_path}")
    copied = False
    for name, size in files:
        item = replace(
            copy,
            source_path=f"{copy.source_path}/{name}",
            destination_path=f"{copy.destination_path}/{name}",
            is_dir=False,
            size=size,
        )
        if not destination.exists(item.destination_path):
            _settle(destination, item.destination_path, source, item)
            copied = True
    if manifest is not None:
        destination.put_buffer(manifest, manifest_path)
        copied = True
    return copied


def probe_store(backend: StorageBackend, *, writable: bool) -> None:
    """Raise when a store's location cannot be used; one request at most."""
    spec = backend.spec
    if backend.protocol == "file":
        # DataJoint's backend has already refused a location that is no directory.
        mode = os.R_OK | os.X_OK | (os.W_OK if writable else 0)
        if not os.access(spec["location"], mode):
            raise PermissionError(f"{spec['location']} may not be used by this user")
        return
    if backend.protocol == "s3":
        endpoint = str(spec["endpoint"])
        if "://" not in endpoint:
            endpoint = ("https://" if spec.get("secure") else "http://") + endpoint
        address = urlsplit(endpoint)
        port = address.port or (443 if address.scheme == "https" else 80)
        # botocore retries a refused connection for many seconds; one plain
        # connection attempt tells an endpoint that is down at once.
        with socket.create_connection((address.hostname, port), PROBE_TIMEOUT):
            pass
    container = spec.get("bucket") or spec.get("container")
    if container:
        backend.fs.info(container)
