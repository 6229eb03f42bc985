"""Other systems drive a link through Kafka alone; transfers scale out.

A non-Python client (kcat, from Debian's packages) publishes a plain JSON pull
request and reads its completion. A large pull spreads over three transfer
workers, one of which stops half way; every row and part arrives exactly once.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import datajoint as dj
import pytest

from demo.pipeline import SourcePipeline, declare_pipeline, fill_pipeline
from link.adapters.kafka import Topics
from link.errors import IncompleteRequestError
from link.executors import PullHandle, PullResult
from tests.conftest import SchemaNames
from tests.e2e.conftest import (
    RunningServices,
    kill_service,
    start_service,
    stop_service,
)
from tests.helpers import (
    assert_rows_equal,
    fetch_sorted,
    filled_pipeline,
    linked_session,
)
from tests.servers import Endpoints

pytestmark = pytest.mark.e2e


def kcat(*arguments: str, stdin: str | None = None) -> str:
    """Run kcat and return what it printed."""
    executable = shutil.which("kcat")
    assert executable is not None, "kcat is not installed (apt-get install kcat)"
    completed = subprocess.run(
        [executable, *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout


def outcome_read_by_kcat(
    endpoints: Endpoints, topic: str, request_id: str, timeout: float = 60
) -> dict[str, Any] | None:
    """Read the topic with kcat until a message keyed by the request id is in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = kcat(
            "-b", endpoints.broker, "-C", "-t", topic,
            "-o", "beginning", "-e", "-q", "-f", "%k\\t%s\\n",
        ).splitlines()  # fmt: skip
        found = [
            line.split("\t", 1)[1] for line in lines if line.startswith(request_id)
        ]
        if found:
            outcome: dict[str, Any] = json.loads(found[0])
            return outcome
        time.sleep(0.5)
    return None


def test_a_plain_json_request_from_kcat_is_carried_out(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
) -> None:
    pipeline = declare_pipeline(source_admin, schema_names.source)
    fill_pipeline(pipeline, subjects=2, sessions_per_subject=2, trials_per_session=2)
    table = linked_session(endpoints, schema_names)
    topics = Topics(over_kafka.topic_prefix)
    request_id = f"kcat-{uuid.uuid4().hex}"
    request = {
        "type": "PullRequested",
        "schema_version": 2,
        "request_id": request_id,
        "link": json.loads(table._link_context.ref.model_dump_json()),
        "keys": [
            {"subject_id": 2, "session_idx": 0},
            {"subject_id": 2, "session_idx": 1},
        ],
    }

    kcat(
        "-b", endpoints.broker, "-P", "-t", topics.pull_requests, "-k", request_id,
        "-X", "topic.partitioner=murmur2_random",
        stdin=json.dumps(request) + "\n",
    )  # fmt: skip

    completion = outcome_read_by_kcat(endpoints, topics.completions, request_id)
    assert completion is not None, "no completion for the kcat request"
    assert completion["type"] == "PullCompleted"
    assert completion["counts"]["shared"] == 2
    assert_rows_equal(
        fetch_sorted(pipeline.Session, "subject_id = 2"), fetch_sorted(table())
    )


def test_a_request_over_the_size_limit_needs_a_raised_client_limit_and_is_rejected(
    over_kafka: RunningServices, endpoints: Endpoints
) -> None:
    # What the README tells a publisher of large requests: librdkafka's own
    # limit (kcat, confluent-kafka) is 1,000,000 bytes unless raised; the link's
    # topics take up to 4 MiB; the services read up to LINK_MAX_REQUEST_BYTES.
    topics = Topics(over_kafka.topic_prefix)
    request_id = f"large-{uuid.uuid4().hex}"
    request = {
        "type": "PullRequested",
        "schema_version": 2,
        "request_id": request_id,
        "link": "tests",
        "keys": [{"subject_id": 1, "session_idx": 0}],
        "padding": "x" * 1_500_000,
    }
    produce = ["-b", endpoints.broker, "-P", "-t", topics.pull_requests, "-k",
               request_id, "-X", "topic.partitioner=murmur2_random"]  # fmt: skip

    with pytest.raises(subprocess.CalledProcessError) as refused:
        kcat(*produce, stdin=json.dumps(request) + "\n")
    assert "too large" in refused.value.stderr.lower()
    kcat(*produce, "-X", "message.max.bytes=4194304", stdin=json.dumps(request) + "\n")

    rejection = outcome_read_by_kcat(endpoints, topics.completions, request_id)
    assert rejection is not None, "no outcome for the large request"
    assert rejection["type"] == "RequestRejected"
    assert "LINK_MAX_REQUEST_BYTES" in rejection["reason"]


def test_pull_without_waiting_returns_a_handle(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
) -> None:
    pipeline = declare_pipeline(source_admin, schema_names.source)
    fill_pipeline(pipeline, subjects=2, sessions_per_subject=3, trials_per_session=2)
    table = linked_session(endpoints, schema_names)

    handle = table().source.pull(wait=False)

    assert isinstance(handle, PullHandle)
    assert handle.status in ("pending", "completed")
    assert len(handle.request_ids) == 1
    result = handle.wait(timeout=60)
    assert handle.status == "completed"
    assert result.counts.shared == 6
    assert len(table()) == 6


def test_waiting_on_a_handle_raises_for_failed_rows_as_pull_does(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
) -> None:
    pipeline = declare_pipeline(source_admin, schema_names.source)
    fill_pipeline(pipeline, subjects=1, sessions_per_subject=3, trials_per_session=1)
    table = linked_session(endpoints, schema_names)
    table().source.pull()
    # A row whose deletion is under way cannot be pulled meanwhile.
    source_admin.connection.query(
        f"UPDATE `{schema_names.helper}`.`outbound` SET process = 'DELETE'"
        " WHERE session_idx = 0"
    )

    handle = table().source.pull(wait=False)

    with pytest.raises(IncompleteRequestError, match="1 of 3 row") as raised:
        handle.wait(timeout=60)
    result = raised.value.result
    assert isinstance(result, PullResult)
    assert result.counts.already_shared == 2


def _sessions_of(
    source_admin: dj.Instance, schema_names: SchemaNames, subjects: int
) -> SourcePipeline:
    """Declare and fill a pipeline of 25 sessions per subject, 3 trials each."""
    pipeline: SourcePipeline = declare_pipeline(source_admin, schema_names.source)
    fill_pipeline(
        pipeline,
        subjects=subjects,
        sessions_per_subject=25,
        trials_per_session=3,
        samples_per_trace=64,
    )
    return pipeline


def _pull_losing_a_worker(
    over_kafka: RunningServices,
    table: Any,
    workers: tuple[str, str],
    end_worker: Callable[[RunningServices, str], None],
    *,
    after_rows: int,
    quiet_for: float,
) -> PullResult:
    """Pull the whole table over three transfer workers, one of which ends.

    The first of workers ends once after_rows rows have arrived; quiet_for
    bounds the wait for news of the pull.
    """
    for name in workers:
        over_kafka.logs[name] = over_kafka.logs["transfer"].with_name(f"{name}.log")
        start_service(over_kafka, "transfer", name, over_kafka.environment)
    try:
        handle = table().source.pull(wait=False)
        assert isinstance(handle, PullHandle)
        deadline = time.monotonic() + 60
        while len(table()) < after_rows and time.monotonic() < deadline:
            time.sleep(0.1)
        end_worker(over_kafka, workers[0])
        return handle.wait(timeout=quiet_for)
    finally:
        for name in workers:
            if name in over_kafka.processes:
                stop_service(over_kafka, name)


def test_a_large_pull_survives_a_transfer_worker_stopping_half_way(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
) -> None:
    pipeline = _sessions_of(source_admin, schema_names, subjects=40)
    table = linked_session(endpoints, schema_names)
    extra = ("transfer-2", "transfer-3")

    result = _pull_losing_a_worker(
        over_kafka, table, extra, stop_service, after_rows=300, quiet_for=120
    )

    assert result.counts.shared == 1000
    assert result.counts.failed == 0
    assert len(table()) == 1000
    assert len(table.Trial()) == 3000
    assert len(table.Stimulus()) == 1000
    unfinished = source_admin.connection.query(
        f"SELECT COUNT(*) FROM `{schema_names.helper}`.`outbound`"
        " WHERE process <> 'NONE'"
    ).fetchone()
    assert unfinished == (0,)
    assert_rows_equal(
        fetch_sorted(pipeline.Session.Trial, "subject_id = 17"),
        fetch_sorted(table.Trial(), "subject_id = 17"),
    )
    logs = {name: over_kafka.logs[name].read_text() for name in ("transfer", *extra)}
    assert all("batch" in text for text in logs.values()), "a worker took no batch"


def test_a_killed_transfer_worker_hands_its_batches_over_within_the_session_timeout(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
) -> None:
    _sessions_of(source_admin, schema_names, subjects=20)
    table = linked_session(endpoints, schema_names)

    # A killed worker says no goodbye to the group: its partitions move when
    # its session ends (LINK_SESSION_TIMEOUT, 10 s). faust's own default, 60 s,
    # would leave the pull without news for longer than the 40 s allowed here.
    result = _pull_losing_a_worker(
        over_kafka,
        table,
        ("transfer-4", "transfer-5"),
        kill_service,
        after_rows=100,
        quiet_for=40,
    )

    assert result.counts.shared == 500
    assert result.counts.failed == 0
    assert len(table()) == 500
    assert len(table.Trial()) == 1500


def _pull_one_subject(table: Any, subject_id: int) -> None:
    """Pull one subject's sessions in a forked child; exit 1 unless all arrive."""
    result = (table().source & f"subject_id = {subject_id}").pull()
    if result.counts.shared != 3:
        raise SystemExit(1)


@pytest.mark.usefixtures("over_kafka")
def test_forked_children_pull_over_the_link_their_parent_declared(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
) -> None:
    filled_pipeline(
        source_admin,
        schema_names,
        subjects=4,
        sessions_per_subject=3,
        trials_per_session=2,
    )
    table = linked_session(endpoints, schema_names)
    source = table().source.connection
    parent_session = source.query("SELECT CONNECTION_ID()").fetchone()

    fork = multiprocessing.get_context("fork")
    children = [
        fork.Process(target=_pull_one_subject, args=(table, subject_id))
        for subject_id in (1, 2, 3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    exit_codes = [child.exitcode for child in children]
    for child in children:
        if child.is_alive():  # stuck: a test that fails must not hang as well
            child.kill()
            child.join()

    assert exit_codes == [0, 0, 0], "a child failed (negative: a signal) or hung"
    assert len(table()) == 9
    assert len(table.Trial()) == 18
    # The children opened sessions of their own and left the parent's alone.
    assert source.query("SELECT CONNECTION_ID()").fetchone() == parent_session
    assert (table().source & "subject_id = 4").pull().counts.shared == 3


def test_credentials_never_appear_in_messages_or_logs(
    over_kafka: RunningServices,
    endpoints: Endpoints,
    schema_names: SchemaNames,
    source_admin: dj.Instance,
) -> None:
    pipeline = declare_pipeline(source_admin, schema_names.source)
    fill_pipeline(pipeline, subjects=1, sessions_per_subject=2, trials_per_session=1)
    table = linked_session(endpoints, schema_names)
    table().source.pull()
    topics = Topics(over_kafka.topic_prefix)

    published = "".join(
        kcat(
            "-b", endpoints.broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
        )
        for topic in topics.all()
    )  # fmt: skip
    logged = "".join(path.read_text() for path in over_kafka.logs.values())

    for secret in (endpoints.link_password, endpoints.destination_password):
        assert secret not in published
        assert secret not in logged
