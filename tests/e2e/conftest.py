"""Fixtures that run the three link services as separate processes.

Each test session gets its own topic prefix, so its topics and consumer groups
are new and no message of an earlier run can reach it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.servers import REPOSITORY, Endpoints
from tests.stores import file_store

SOURCE_STORE = "lab_raw"
DESTINATION_STORE = "our_raw"

SERVICES = ("pull_requests", "transfer", "deletion_reconciler")
READY_MARK = "[^Worker]: Ready"
START_TIMEOUT = 90.0
OUTCOME_RETENTION = 30.0
"""Seconds the e2e services keep a completed request's outcome."""


@dataclass
class RunningServices:
    """The service processes of one test session and where they log."""

    topic_prefix: str
    logs: dict[str, Path]
    environment: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log_tail(self, name: str, lines: int = 40) -> str:
        """Return the end of one service's log."""
        text = self.logs[name].read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


REGISTRY = """
[[link]]
name = "tests"
source_host = "{source_host}"
source_schema = "src_*"
helper_schema = "helper_*"
destination_schema = "dst_*"
"""


@pytest.fixture(scope="session")
def store_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Return two file stores, the source lab's and ours, shared with the services."""
    folder = tmp_path_factory.mktemp("stores")
    return {
        name: file_store(folder / name) for name in (SOURCE_STORE, DESTINATION_STORE)
    }


def _service_environment(
    endpoints: Endpoints, prefix: str, registry: Path, stores: dict[str, Any]
) -> dict[str, str]:
    return {
        **os.environ,
        # The services configure the stores as DataJoint does: DJ_STORES.
        "DJ_STORES": json.dumps(stores),
        "LINK_TOPIC_PREFIX": prefix,
        "LINK_BROKER": endpoints.broker,
        "LINK_USER": endpoints.link_user,
        "LINK_PASS": endpoints.link_password,
        "LINK_REGISTRY": str(registry),
        "DJ_HOST": endpoints.destination_host,
        "DJ_PORT": str(endpoints.destination_port),
        "DJ_USER": endpoints.destination_user,
        "DJ_PASS": endpoints.destination_password,
        "LINK_REDRIVE_INTERVAL": "1",
        # Short enough for a test to see an outcome forgotten, long enough for
        # the tests that repeat a request id within it.
        "LINK_OUTCOME_RETENTION": str(OUTCOME_RETENTION),
        # Small batches, so that a modest pull spreads over several workers.
        "LINK_BATCH_SIZE": "25",
        "PYTHONUNBUFFERED": "1",
    }


def start_service(
    services: RunningServices, module: str, name: str, environment: dict[str, str]
) -> None:
    """Start one service process and wait until its worker is ready."""
    log = services.logs[name]
    with log.open("wb") as output:
        services.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{module}"],
            cwd=REPOSITORY,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while READY_MARK not in log.read_text(errors="replace"):
        if services.processes[name].poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"service {name} did not start:\n{services.log_tail(name)}")
        time.sleep(0.2)


def kill_service(services: RunningServices, name: str) -> None:
    """Kill one service process at once (SIGKILL), as a crash would end it."""
    process = services.processes.pop(name)
    process.kill()
    process.wait()


def stop_service(services: RunningServices, name: str) -> None:
    """Stop one service process, killing it if it does not stop in time."""
    process = services.processes.pop(name)
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def over_kafka(
    services: RunningServices, link_environment: None, monkeypatch: pytest.MonkeyPatch
) -> RunningServices:
    """Point the library at the services' topics."""
    monkeypatch.setenv("LINK_TOPIC_PREFIX", services.topic_prefix)
    monkeypatch.setenv("LINK_PULL_TIMEOUT", "60")
    return services


@pytest.fixture(scope="session")
def services(
    endpoints: Endpoints,
    tmp_path_factory: pytest.TempPathFactory,
    store_specs: dict[str, Any],
) -> Iterator[RunningServices]:
    """Run the pull-request service, one transfer worker and the reconciler."""
    prefix = f"test-{secrets.token_hex(4)}"
    folder = tmp_path_factory.mktemp("service-logs")
    running = RunningServices(
        topic_prefix=prefix, logs={name: folder / f"{name}.log" for name in SERVICES}
    )
    registry = folder / "links.toml"
    registry.write_text(REGISTRY.format(source_host=endpoints.source_host))
    environment = _service_environment(endpoints, prefix, registry, store_specs)
    running.environment = environment
    try:
        for name in SERVICES:
            start_service(running, name, name, environment)
        yield running
    finally:
        for name in list(running.processes):
            stop_service(running, name)
        delete_topics(endpoints.broker, prefix)


def delete_topics(broker: str, prefix: str) -> None:
    """Delete the topics of one test session, so that runs do not pile them up."""
    admin = AdminClient({"bootstrap.servers": broker})
    names = [
        name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)
    ]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()
