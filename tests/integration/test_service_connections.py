"""A service's database thread connects ahead to the servers of its registry."""

from __future__ import annotations

import logging

import pytest

from link.config import LinkSettings
from link.registry import RegisteredLink, Registry
from services.runtime import Databases
from tests.servers import Endpoints

pytestmark = pytest.mark.integration

UNREACHABLE = "127.0.0.1:1"


def entry(name: str, address: str) -> RegisteredLink:
    return RegisteredLink(
        name=name,
        source_host=address,
        source_schema="src_*",
        helper_schema="helper_*",
        destination_schema="dst_*",
    )


@pytest.mark.usefixtures("link_environment")
def test_servers_are_connected_before_the_first_request(
    endpoints: Endpoints, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(
        [entry("lab", endpoints.source_host), entry("gone", UNREACHABLE)]
    )
    with caplog.at_level(logging.WARNING, logger="services.runtime"):
        databases = Databases(LinkSettings(), registry)
        # The thread takes work in order: this runs after the connecting.
        opened = databases._executor.submit(databases.open_servers).result(timeout=60)

    assert opened == [endpoints.source_host]
    assert f"source server {UNREACHABLE} not reachable yet" in caplog.text
