"""Fixtures that connect the tests to real servers.

Point the tests at running servers with the variables that ``make env`` prints:
LINK_SOURCE_HOST, LINK_SOURCE_ADMIN_USER, LINK_SOURCE_ADMIN_PASS, LINK_USER,
LINK_PASS, DJ_HOST, DJ_PORT, DJ_USER, DJ_PASS and LINK_BROKER. ``make test``
starts the local servers and exports them. When they are not set and a Docker
engine answers, testcontainers starts the same servers instead. Otherwise every
test that needs a server fails with a message saying so: a missing server
never skips a test, or a green run would mean nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import datajoint as dj
import pytest

from demo.pipeline import SourcePipeline, declare_pipeline, fill_pipeline
from tests.servers import Endpoints, endpoints_from_environment, start_containers


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    """Return the servers the tests use, starting containers if need be."""
    found = endpoints_from_environment()
    if found is not None:
        yield found
        return
    with start_containers() as started:
        started.export()
        yield started


@pytest.fixture(scope="session")
def source_admin(endpoints: Endpoints) -> dj.Instance:
    """Return a connection to the source server as the source lab's own user."""
    host, port = endpoints.source_host.split(":")
    return dj.Instance(
        host,
        endpoints.source_admin_user,
        endpoints.source_admin_password,
        port=int(port),
        safemode=False,
    )


@pytest.fixture(scope="session")
def destination_admin(endpoints: Endpoints) -> dj.Instance:
    """Return a connection to the destination server as the destination user."""
    return dj.Instance(
        endpoints.destination_host,
        endpoints.destination_user,
        endpoints.destination_password,
        port=endpoints.destination_port,
        safemode=False,
    )


@dataclass(frozen=True)
class SchemaNames:
    """Fresh schema names for one test, matching the link user's grants."""

    source: str
    helper: str
    destination: str


@pytest.fixture
def schema_names(
    source_admin: dj.Instance, destination_admin: dj.Instance
) -> Iterator[SchemaNames]:
    """Return unused schema names and drop the schemas after the test."""
    suffix = secrets.token_hex(4)
    names = SchemaNames(
        source=f"src_t{suffix}",
        helper=f"helper_t{suffix}",
        destination=f"dst_t{suffix}",
    )
    yield names
    # The helper references the source: drop it first.
    for schema in (names.helper, names.source):
        source_admin.connection.query(f"DROP DATABASE IF EXISTS `{schema}`")
    destination_admin.connection.query(f"DROP DATABASE IF EXISTS `{names.destination}`")


@pytest.fixture
def pipeline(source_admin: dj.Instance, schema_names: SchemaNames) -> SourcePipeline:
    """Declare and fill the demo pipeline in a fresh source schema.

    Three subjects with two sessions of three trials each; test modules that
    need other sizes define their own fixture of this name.
    """
    pipeline = declare_pipeline(source_admin, schema_names.source)
    fill_pipeline(pipeline, subjects=3, sessions_per_subject=2, trials_per_session=3)
    return pipeline


@pytest.fixture
def embedded_link_environment(
    link_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give the library its environment without the broker: embedded mode.

    For tests that need no services (the integration tests run none).
    """
    monkeypatch.delenv("LINK_BROKER")


@pytest.fixture
def link_environment(endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the library under test the link user's credentials and the broker."""
    monkeypatch.setenv("LINK_USER", endpoints.link_user)
    monkeypatch.setenv("LINK_PASS", endpoints.link_password)
    monkeypatch.setenv("LINK_BROKER", endpoints.broker)
    # delete() asks for confirmation in safemode, as DataJoint's does.
    monkeypatch.setitem(dj.config, "safemode", False)
    monkeypatch.setattr(dj.config.database, "host", endpoints.destination_host)
    monkeypatch.setattr(dj.config.database, "port", endpoints.destination_port)
    monkeypatch.setattr(dj.config.database, "user", endpoints.destination_user)
    monkeypatch.setattr(dj.config.database, "password", endpoints.destination_password)
