"""The AsyncAPI document: valid by the official AsyncAPI 3.0 schema, and complete.

The official schema comes from the @asyncapi/specs package on npm; ``make
test`` fetches it into .cache/asyncapi once (``make asyncapi-spec``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped,unused-ignore]

from link.adapters.kafka import Topics
from link.domain.events import PUBLIC_MESSAGES
from link.schemas_export import ASYNCAPI_FILE, SCHEMAS_DIR, schema_file_name

OFFICIAL_SCHEMA = (
    Path(__file__).resolve().parents[2]
    / ".cache"
    / "asyncapi"
    / "package"
    / "schemas"
    / "3.0.0.json"
)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS_DIR / ASYNCAPI_FILE).read_text())
    return loaded


def test_the_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    if not OFFICIAL_SCHEMA.exists():
        pytest.fail(
            f"{OFFICIAL_SCHEMA} is missing: run `make asyncapi-spec` (make test does)."
        )
    validator = Draft7Validator(json.loads(OFFICIAL_SCHEMA.read_text()))

    errors = sorted(validator.iter_errors(document), key=lambda error: error.path)

    assert [f"{list(error.path)}: {error.message}" for error in errors] == []


def test_every_model_is_a_message_and_every_message_a_model(
    document: dict[str, Any],
) -> None:
    messages = document["components"]["messages"]

    assert set(messages) == {model.__name__ for model in PUBLIC_MESSAGES}
    for model in PUBLIC_MESSAGES:
        payload = messages[model.__name__]["payload"]["$ref"]
        assert payload == schema_file_name(model)
        assert (SCHEMAS_DIR / payload).exists()


def test_every_topic_is_a_channel(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}

    assert addresses == set(Topics().all())


def test_the_services_receive_requests_and_send_outcomes(
    document: dict[str, Any],
) -> None:
    operations = document["operations"]

    assert operations["receivePullRequests"]["action"] == "receive"
    assert operations["sendCompletions"]["action"] == "send"
    assert "sendPullRequests" not in operations
