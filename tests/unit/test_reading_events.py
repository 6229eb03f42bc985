"""Reading the services' events in the library, older versions included (no broker)."""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import pydantic
import pytest

from link.adapters import kafka
from link.adapters.kafka import RequestListener, read_event
from link.domain.events import (
    DeletionCompleted,
    DeletionCounts,
    PullCompleted,
    RowCounts,
)
from link.errors import UnsupportedVersionError

# A DeletionCompleted as services before the orphaned count wrote it.
VERSION_1 = {
    "schema_version": 1,
    "type": "DeletionCompleted",
    "request_id": "request-2",
    "link_id": "source:3306/lab.session->copy.session",
    "requested": 4,
    "counts": {"unshared": 2, "deprecated": 1, "already_gone": 0, "failed": 1},
    "failures": [{"key": {"subject_id": 9}, "reason": "being pulled"}],
    "completed_at": "2024-05-01T12:30:00Z",
}


def payload(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def test_a_version_1_deletion_outcome_is_read_as_version_2() -> None:
    event = read_event(payload(VERSION_1))

    assert isinstance(event, DeletionCompleted)
    assert event.schema_version == 2
    assert event.counts == DeletionCounts(unshared=2, deprecated=1, failed=1)
    assert event.counts.orphaned == 0
    assert event.request_id == "request-2"
    assert event.failures[0].reason == "being pulled"


def test_a_version_2_deletion_outcome_keeps_its_orphaned_count() -> None:
    counts = {**VERSION_1["counts"], "orphaned": 3}  # type: ignore[dict-item]
    document = {**VERSION_1, "schema_version": 2, "counts": counts}

    event = read_event(payload(document))

    assert isinstance(event, DeletionCompleted)
    assert event.counts.orphaned == 3


def test_a_version_1_deletion_outcome_with_an_orphaned_count_is_invalid() -> None:
    counts = {**VERSION_1["counts"], "orphaned": 3}  # type: ignore[dict-item]

    with pytest.raises(pydantic.ValidationError, match="orphaned"):
        read_event(payload({**VERSION_1, "counts": counts}))


@pytest.mark.parametrize(
    ("document", "reads"),
    [
        pytest.param({**VERSION_1, "schema_version": 3}, "1, 2", id="deletion-v3"),
        pytest.param(
            PullCompleted(
                request_id="request-2", link_id="l", requested=1, counts=RowCounts()
            ).model_dump(mode="json")
            | {"schema_version": 2},
            "1",
            id="pull-v2",
        ),
    ],
)
def test_an_event_of_an_unknown_version_is_refused_saying_so(
    document: dict[str, Any], reads: str
) -> None:
    with pytest.raises(UnsupportedVersionError) as raised:
        read_event(payload(document))

    message = str(raised.value)
    assert f"schema version {document['schema_version']}" in message
    assert f"it reads {reads}" in message
    assert "upgrade datajoint-link" in message
    assert raised.value.request_id == "request-2"


@pytest.mark.parametrize(
    "text",
    [b"", b"not json", b"[1]", b'{"type": "Unknown", "request_id": "r"}'],
)
def test_a_message_that_is_no_event_is_invalid(text: bytes) -> None:
    with pytest.raises(pydantic.ValidationError):
        read_event(text)


class FakeMessage:
    """A consumed message: its value and where it was."""

    def __init__(self, value: bytes) -> None:
        """Keep the value."""
        self._value = value

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "link.completions"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7


class FakeConsumer:
    """Gives the messages it was given, then nothing."""

    messages: ClassVar[list[FakeMessage]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        """Take the messages to give."""
        self._messages = list(FakeConsumer.messages)

    def assign(self, partitions: list[Any]) -> None:
        pass

    def poll(self, timeout: float) -> FakeMessage | None:
        return self._messages.pop(0) if self._messages else None

    def close(self) -> None:
        pass


class NoTopics:
    """Answers the listener's question for end offsets: no partitions."""

    def end_offsets(self, topics: list[str]) -> list[Any]:
        return []


def listener_of(
    monkeypatch: pytest.MonkeyPatch, *documents: dict[str, Any]
) -> RequestListener:
    monkeypatch.setattr(
        FakeConsumer, "messages", [FakeMessage(payload(d)) for d in documents]
    )
    monkeypatch.setattr(kafka, "Consumer", FakeConsumer)
    topics = ["link.completions"]
    return RequestListener("broker:9092", topics, NoTopics())  # type: ignore[arg-type]


def test_the_listener_hands_on_a_version_1_outcome_as_version_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listener = listener_of(monkeypatch, VERSION_1)

    [event] = listener.events({"request-2"}, timeout=0.05)

    assert isinstance(event, DeletionCompleted)
    assert event.counts.orphaned == 0


def test_the_listener_refuses_an_awaited_outcome_of_an_unknown_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listener = listener_of(monkeypatch, {**VERSION_1, "schema_version": 3})

    with pytest.raises(UnsupportedVersionError, match="schema version 3"):
        list(listener.events({"request-2"}, timeout=0.05))


def test_the_listener_passes_over_an_unknown_version_of_another_request(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    other = {**VERSION_1, "schema_version": 3, "request_id": "request-3"}
    listener = listener_of(monkeypatch, other, VERSION_1)

    with caplog.at_level(logging.WARNING, logger="link"):
        events = list(listener.events({"request-2"}, timeout=0.05))

    assert [event.request_id for event in events] == ["request-2"]
    assert "link.completions/0/7" in caplog.text
    assert "schema version 3" in caplog.text
