"""Contains the stores and the source pipeline of the stored-object tests.

The source pipeline has a master and two part tables whose stored attributes
cover every stored codec at least twice. It is filled through DataJoint, which
on MariaDB needs the heading patch of ``json_heading_workaround``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datajoint as dj
import numpy as np
from datajoint.builtin_codecs.npy import NpyRef
from datajoint.hash_registry import get_store_backend
from datajoint.objectref import ObjectRef
from datajoint.storage import StorageBackend

S3_ACCESS_KEY = "link-test"
S3_SECRET_KEY = "link-test-secret"


def file_store(location: Path, **layout: Any) -> dict[str, Any]:
    """Return the spec of a store in a local folder, creating the folder."""
    location.mkdir(parents=True, exist_ok=True)
    return {"protocol": "file", "location": str(location), **layout}


def s3_store(endpoint: str, bucket: str, **layout: Any) -> dict[str, Any]:
    """Return the spec of a store in a bucket of an S3 endpoint without TLS."""
    return {
        "protocol": "s3",
        "endpoint": endpoint,
        "bucket": bucket,
        "location": "lab",
        "access_key": S3_ACCESS_KEY,
        "secret_key": S3_SECRET_KEY,
        "secure": False,
        **layout,
    }


def new_bucket_name() -> str:
    """Return a fresh bucket name that S3 accepts."""
    return f"link-{secrets.token_hex(6)}"


def create_bucket(spec: dict[str, Any]) -> None:
    """Create the bucket of an S3 store spec."""
    backend = StorageBackend(spec)
    backend.fs.mkdir(spec["bucket"])


@contextmanager
def moto_s3() -> Iterator[str]:
    """Serve S3 on a free local port with moto; yield its endpoint (host:port)."""
    # moto[server] comes with the dev extra and s3fs with datajoint[s3]; a
    # missing one fails the S3 tests, as a missing server would.
    import s3fs  # noqa: F401
    from moto import server as moto_server

    # moto's server logs every request through werkzeug: far too chatty here.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = moto_server.ThreadedMotoServer(
        ip_address="127.0.0.1", port=0, verbose=False
    )
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"{host}:{port}"
    finally:
        server.stop()


def json_heading_workaround(table: Any) -> None:
    """Mark the heading's stored <blob@>/<attach@> attributes as JSON.

    DataJoint 2.3.5 on MariaDB inserts these two-level codecs with
    "TypeError: dict can not be used as parameter": their heading never sets
    ``json=True`` (upstream #1451, closed, still reproduced; design notes §3).
    Only inserting through DataJoint needs this; the link copies raw SQL and
    DataJoint fetches decode these attributes without it. It patches the
    heading cached on the table, so it belongs in tests, not in the library.
    """
    heading = table.heading
    heading.attributes  # noqa: B018 - loads the heading before it is patched
    attributes = heading._attributes
    for name, attr in list(attributes.items()):
        stored = attr.codec is not None and attr.store is not None
        if stored and not attr.json and attr.codec.name in ("blob", "attach"):
            attributes[name] = attr._replace(json=True)


@dataclass(frozen=True)
class SourcePipeline:
    """The source tables: Session with parts Trial and Stimulus."""

    schema: Any
    session: Any
    trial: Any
    stimulus: Any


def declare_source(
    instance: dj.Instance, schema_name: str, store: str
) -> SourcePipeline:
    """Declare the master and its two parts with stored attributes of every codec."""
    schema = instance.Schema(schema_name)

    # datajoint ships no type information: its classes are Any to mypy.
    class Session(dj.Manual):  # type: ignore[misc]
        definition = f"""
        # a recording session
        session_id : int32
        ---
        summary : <blob@{store}>              # an array per session
        protocol = null : <attach@{store}>    # the protocol document
        raw_file : <filepath@{store}>         # acquisition file placed in the store
        """

        class Trial(dj.Part):  # type: ignore[misc]
            definition = f"""
            -> master
            trial_idx : int16
            ---
            trace : <blob@{store}>
            spikes = null : <hash@{store}>
            frames : <npy@{store}>
            clip = null : <object@{store}>    # one file
            """

        class Stimulus(dj.Part):  # type: ignore[misc]
            definition = f"""
            -> master
            stimulus_id : varchar(16)
            ---
            movie : <object@{store}>          # a folder
            leaflet : <attach@{store}>
            weights = null : <npy@{store}>
            config = null : <hash@{store}>
            notes = null : <filepath@{store}>
            params = null : <blob@{store}>
            """

    session = schema(Session)
    return SourcePipeline(
        schema=schema, session=session, trial=session.Trial, stimulus=session.Stimulus
    )


def fill_source(
    pipeline: SourcePipeline,
    instance: dj.Instance,
    store: str,
    files: Path,
    sessions: int = 3,
) -> None:
    """Insert sessions with three trials and two stimuli each, through DataJoint.

    Some values repeat (the same trace, the same leaflet) so that hash-addressed
    objects are shared by rows; nullable attributes are left empty in some rows.
    """
    backend = get_store_backend(store, instance.config)
    rng = np.random.default_rng(7)
    masters, trials, stimuli = [], [], []
    for session_id in range(1, sessions + 1):
        raw_file = f"raw/session{session_id}.bin"
        backend.put_buffer(rng.bytes(64), raw_file)
        protocol = None
        if session_id != sessions:
            protocol = _write(
                files / f"p{session_id}" / "protocol.txt", f"v{session_id}"
            )
        masters.append(
            {
                "session_id": session_id,
                "summary": np.arange(10) * session_id,
                "protocol": protocol,
                "raw_file": raw_file,
            }
        )
        for trial_idx in range(3):
            clip = None
            if trial_idx != 2:
                clip = _write(files / f"c{session_id}{trial_idx}" / "clip.txt", "c")
            trials.append(
                {
                    "session_id": session_id,
                    "trial_idx": trial_idx,
                    # Trial 0 of every session has the same trace: one object.
                    "trace": rng.normal(size=50) if trial_idx else np.zeros(50),
                    "spikes": rng.bytes(32) if trial_idx != 2 else None,
                    "frames": rng.normal(size=(2, 3)).astype(np.float32),
                    "clip": clip,
                }
            )
        for stimulus_id in ("grating", "movie"):
            movie = files / f"m{session_id}{stimulus_id}"
            _write(movie / "frames" / "0001.raw", f"{session_id}{stimulus_id}")
            _write(movie / "info.json", "{}")
            notes = None
            if stimulus_id == "movie":
                notes = f"notes/{session_id}-{stimulus_id}.txt"
                backend.put_buffer(f"notes {session_id}".encode(), notes)
            stimuli.append(
                {
                    "session_id": session_id,
                    "stimulus_id": stimulus_id,
                    "movie": str(movie),
                    "leaflet": _write(files / "leaflet" / "leaflet.txt", "the same"),
                    "weights": np.arange(4) if stimulus_id == "movie" else None,
                    "config": f"{stimulus_id}".encode(),
                    "notes": notes,
                    "params": np.eye(2) * session_id
                    if stimulus_id == "movie"
                    else None,
                }
            )
    for table, rows in (
        (pipeline.session, masters),
        (pipeline.trial, trials),
        (pipeline.stimulus, stimuli),
    ):
        json_heading_workaround(table)
        table.insert(rows)


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


ATTACHMENTS = {"protocol", "leaflet"}
"""The attachment attributes of the source pipeline."""


def comparable(name: str, value: Any) -> Any:
    """Return a value in a form that compares equal when the content is equal."""
    if isinstance(value, NpyRef):
        assert value.shape == value.load().shape, name
        return ("npy", str(value.dtype), value.load().tolist())
    if isinstance(value, np.ndarray):
        return ("array", str(value.dtype), value.shape, value.tolist())
    if isinstance(value, ObjectRef):
        assert value.verify(), name
        content = dict(value.fsmap.items()) if value.is_dir else value.read()
        return (
            "object",
            value.is_dir,
            value.ext,
            value.size,
            value.item_count,
            content,
        )
    if name in ATTACHMENTS and value is not None:
        path = Path(value)
        return ("attachment", path.name, path.read_bytes())
    return value


def decoded(instance: dj.Instance, full_name: str, downloads: Path) -> list[Any]:
    """Fetch a table row by row through DataJoint, each into its own download folder.

    Fetching rows one by one keeps attachment names as stored: DataJoint renames
    an attachment whose name is already taken in the download folder.
    """
    table = dj.FreeTable(instance.connection, full_name)
    rows = []
    for index, key in enumerate(table.keys(order_by=table.primary_key)):
        with instance.config.override(download_path=str(downloads / str(index))):
            (row,) = (table & key).to_dicts()
        rows.append({name: comparable(name, value) for name, value in row.items()})
    return rows
