"""Tests of the services' registry of accepted links and of request reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from link.domain.events import LinkRef, PullRequested
from link.errors import ConfigurationError, InvalidRequestError
from link.registry import Registry
from services.runtime import parse

REGISTRY = """
[[link]]
name = "sessions"
source_host = "db.lab-a.org:3306"
source_address = "10.0.0.5:3306"
source_schema = "lab_a"
source_table = "session"
helper_schema = "lab_a_link"
helper_table = "session_outbound"
destination_schema = "lab_b"
destination_table = "session"

[[link]]
name = "anything-in-src"
source_host = "127.0.0.1:3316"
source_schema = "src_*"
helper_schema = "helper_*"
destination_schema = "dst_*"
"""


def ref(**changes: str) -> LinkRef:
    fields = {
        "source_host": "127.0.0.1:3316",
        "source_schema": "src_lab",
        "source_table": "session",
        "helper_schema": "helper_lab",
        "helper_table": "outbound",
        "destination_schema": "dst_lab",
        "destination_table": "session",
        **changes,
    }
    return LinkRef.model_validate(fields)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    path = tmp_path / "links.toml"
    path.write_text(REGISTRY)
    return Registry.from_file(path)


def test_a_link_matching_a_pattern_entry_is_accepted(registry: Registry) -> None:
    link, address = registry.resolve(ref())

    assert link == ref()
    assert address == "127.0.0.1:3316"


@pytest.mark.parametrize(
    "changes",
    [
        {"source_host": "10.9.9.9:3306"},
        {"source_schema": "lab"},
        {"helper_schema": "src_lab"},
        {"destination_schema": "production"},
    ],
)
def test_a_link_outside_every_entry_is_refused(
    registry: Registry, changes: dict[str, str]
) -> None:
    with pytest.raises(InvalidRequestError, match="not registered"):
        registry.resolve(ref(**changes))


def test_a_link_named_by_its_entry_reaches_the_registered_address(
    registry: Registry,
) -> None:
    link, address = registry.resolve("sessions")

    assert link.source_host == "db.lab-a.org:3306"
    assert link.helper_table == "session_outbound"
    assert address == "10.0.0.5:3306"


def test_an_entry_with_patterns_cannot_be_named(registry: Registry) -> None:
    with pytest.raises(InvalidRequestError, match="holds patterns"):
        registry.resolve("anything-in-src")
    with pytest.raises(InvalidRequestError, match="No link named 'nope'"):
        registry.resolve("nope")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[link]]\nname = 'x'\n", "not valid"),
        ("not toml at all [", "not valid"),
        (REGISTRY + REGISTRY, "more than once"),
    ],
)
def test_a_broken_registry_file_is_a_clear_error(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "links.toml"
    path.write_text(text)

    with pytest.raises(ConfigurationError, match=problem):
        Registry.from_file(path)


def request_document(**changes: object) -> bytes:
    document = {
        "type": "PullRequested",
        "schema_version": 1,
        "request_id": "r-1",
        "link": json.loads(ref().model_dump_json()),
        "keys": [{"subject_id": 1}],
        **changes,
    }
    return json.dumps(document).encode()


def test_a_version_1_request_is_read_and_upcast() -> None:
    request = parse(PullRequested, request_document(), limit=10_000)

    assert isinstance(request, PullRequested)
    assert request.schema_version == 2
    assert request.link == ref()


def test_a_request_without_a_version_is_read_as_the_newest() -> None:
    document = json.loads(request_document())
    del document["schema_version"]
    document["link"] = "sessions"

    request = parse(PullRequested, json.dumps(document).encode(), limit=10_000)

    assert request.link == "sessions"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (request_document(schema_version=7), "Schema version 7 of PullRequested"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (request_document(keys=[]), "keys"),
        (request_document(request_id="has spaces"), "request_id"),
        (request_document(keys=[{"a": "x" * 20_000}]), "over the 10000 byte limit"),
    ],
)
def test_an_unreadable_request_is_refused_with_a_reason(
    payload: bytes, reason: str
) -> None:
    with pytest.raises(InvalidRequestError, match=reason):
        parse(PullRequested, payload, limit=10_000)
