"""Runs the demo: a restricted pull of a realistic pipeline over Kafka.

``make demo`` starts the servers and the three services, then runs this. It
declares the pipeline on the source server (once), resets the demo's link (its
helper and destination schemas) so that every run starts from Unshared rows,
links the Session table, pulls three subjects' sessions on one rig, prints what
arrived and compares every pulled table with the source, value by value.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from typing import Any

# DataJoint warns on import and on every MariaDB connection; not news here.
warnings.filterwarnings("ignore", message="No datajoint.json found")
warnings.filterwarnings("ignore", message="MariaDB is not officially supported")
os.environ.setdefault("DJ_LOG_LEVEL", "WARNING")

import datajoint as dj  # noqa: E402
import numpy as np  # noqa: E402

from demo.pipeline import SourcePipeline, declare_pipeline, fill_pipeline  # noqa: E402
from link import link  # noqa: E402
from link.adapters.servers import split_host  # noqa: E402
from link.errors import LinkError  # noqa: E402

SOURCE_SCHEMA = "src_demo"
HELPER_SCHEMA = "helper_demo"
DESTINATION_SCHEMA = "dst_demo"
RESTRICTION = "subject_id in (2, 3, 5) and rig = 'rig-0'"


def environment(name: str) -> str:
    """Return an environment variable or stop with a message naming it."""
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set: run the demo with `make demo`.")
    return value


def prepare_source() -> SourcePipeline:
    """Declare and fill the source pipeline as the source lab's own user."""
    host, port = split_host(environment("LINK_SOURCE_HOST"))
    admin = dj.Instance(
        host,
        environment("LINK_SOURCE_ADMIN_USER"),
        environment("LINK_SOURCE_ADMIN_PASS"),
        port=port,
        safemode=False,
    )
    pipeline = declare_pipeline(admin, SOURCE_SCHEMA)
    fill_pipeline(
        pipeline,
        subjects=8,
        sessions_per_subject=4,
        trials_per_session=25,
        samples_per_trace=2000,
    )
    # A fresh link each run: without its helper and destination schemas every
    # source row is Unshared again, a consistent state of the lifecycle.
    admin.connection.query(f"DROP DATABASE IF EXISTS `{HELPER_SCHEMA}`")
    return pipeline


def reset_destination() -> None:
    """Drop the demo's destination schema, as the destination lab's user."""
    database = dj.config.database
    assert database.password is not None
    destination = dj.Instance(
        database.host,
        database.user,
        database.password.get_secret_value(),
        port=database.port,
    )
    destination.connection.query(f"DROP DATABASE IF EXISTS `{DESTINATION_SCHEMA}`")


def main() -> None:
    """Run the demo and print what arrived."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    source_host = environment("LINK_SOURCE_HOST")
    environment("LINK_BROKER")
    pipeline = prepare_source()
    reset_destination()

    @link(
        source_host, SOURCE_SCHEMA, HELPER_SCHEMA, "SessionOutbound", DESTINATION_SCHEMA
    )
    class Session:
        """Recording sessions shared by the source lab."""

    # The decorator returns a DataJoint table class; type checkers only see the
    # empty class it decorated.
    table: Any = Session
    trial_table = table.Trial
    source = table().source
    print(f"source {source_host}/{SOURCE_SCHEMA}: {len(source)} sessions")
    print(f"pulling the sessions where {RESTRICTION} over Kafka ...")
    started = time.perf_counter()
    try:
        result = (source & RESTRICTION).pull(display_progress=True)
    except LinkError as error:
        sys.exit(f"the pull failed: {error}")
    elapsed = time.perf_counter() - started

    counts = result.counts
    print(
        f"pulled {counts.shared} session(s) in {elapsed:.2f} s"
        f" ({counts.already_shared} already shared, {counts.failed} failed)"
    )
    print(f"\ndestination {DESTINATION_SCHEMA}.session:")
    print(table())
    header = ("subject", "session", "trials", "hits", "mean |trace|")
    print("\n" + " ".join(f"{name:>7}" for name in header))
    for key in table().keys(order_by=["subject_id", "session_idx"]):
        trials = (trial_table() & key).to_dicts()
        hits = sum(trial["outcome"] == "hit" for trial in trials)
        level = float(np.mean([np.abs(trial["trace"]).mean() for trial in trials]))
        print(
            f"{key['subject_id']:>7} {key['session_idx']:>7} {len(trials):>7}"
            f" {hits:>7} {level:>12.4f}"
        )
    chosen = (pipeline.Session & RESTRICTION).proj()
    compared: tuple[tuple[str, Any, Any], ...] = (
        ("session", table(), pipeline.Session & chosen),
        ("trial", trial_table(), pipeline.Session.Trial & chosen),
        ("stimulus", table.Stimulus(), pipeline.Session.Stimulus & chosen),
    )
    different = []
    for name, destination, origin in compared:
        order = list(origin.primary_key)
        arrived = destination.to_dicts(order_by=order)
        sent = origin.to_dicts(order_by=order)
        identical = same_rows(arrived, sent)
        verdict = "identical to" if identical else "DIFFERENT from"
        print(
            f"{len(arrived)} {name} rows arrived, value by value {verdict} the source"
        )
        if not identical:
            different.append(name)
    if different:
        sys.exit(1)


def same_rows(arrived: list[dict[str, Any]], sent: list[dict[str, Any]]) -> bool:
    """Return whether two lists of fetched rows hold the same values, arrays too."""
    return len(arrived) == len(sent) and all(
        a.keys() == s.keys()
        and all(
            np.array_equal(a[name], s[name])
            if isinstance(s[name], np.ndarray)
            else a[name] == s[name]
            for name in s
        )
        for a, s in zip(arrived, sent, strict=True)
    )


if __name__ == "__main__":
    main()
