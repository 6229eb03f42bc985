"""Tests that schemas/ matches the message models and accepts what they write."""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

import pydantic
import pytest

# jsonschema ships no type information; types-jsonschema is not a dev dependency.
from jsonschema import (  # type: ignore[import-untyped, unused-ignore]
    Draft202012Validator,
)

from link.domain.events import (
    PUBLIC_MESSAGES,
    BatchTransferred,
    BatchTransferredV1,
    DeadLetter,
    DeletionCompleted,
    DeletionCompletedV1,
    DeletionCounts,
    DeletionCountsV1,
    DeletionRequested,
    DeletionRequestedV1,
    LinkRef,
    Message,
    PullCompleted,
    PullRequested,
    PullRequestedV1,
    PullStarted,
    PullStartedV1,
    RequestRejected,
    RowCounts,
    RowFailure,
    TransferRequested,
    TransferRequestedV1,
)
from link.schemas_export import (
    ASYNCAPI_FILE,
    SCHEMAS_DIR,
    drift,
    render_schemas,
    schema_file_name,
)

LINK = LinkRef(
    source_host="source.example:3306",
    source_schema="lab",
    source_table="_session",
    helper_schema="lab_link",
    helper_table="session_helper",
    destination_schema="lab_copy",
    destination_table="_session",
    stores={"raw": "raw_copy"},
)
AT = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
KEYS = [
    {"subject_id": 1, "session_date": "2024-01-01", "animal": None},
    {"subject_id": 2, "session_date": "2024-01-02", "weight": 2.5, "ok": True},
]
COUNTS = RowCounts(shared=3, tainted=1, deprecated=1, already_shared=2, failed=1)
FAILURES = [RowFailure(key={"subject_id": 9}, reason="not in the source table")]

EXAMPLES: dict[type[Message], Message] = {
    PullRequested: PullRequested(
        request_id="request-1", link=LINK, keys=KEYS, requested_at=AT
    ),
    PullRequestedV1: PullRequestedV1(
        request_id="request-1", link=LINK, keys=KEYS, requested_at=AT
    ),
    DeletionRequestedV1: DeletionRequestedV1(
        request_id="request-2", link=LINK, keys=KEYS, requested_at=AT
    ),
    TransferRequested: TransferRequested(
        request_id="request-1",
        link=LINK,
        attempt="5f0c9a",
        batch_index=1,
        batch_count=2,
        keys=KEYS,
    ),
    TransferRequestedV1: TransferRequestedV1(
        request_id="request-1", link=LINK, batch_index=1, batch_count=2, keys=KEYS
    ),
    PullStarted: PullStarted(
        request_id="request-1",
        link_id=LINK.link_id,
        attempt="5f0c9a",
        started_from="3/1041",
        requested=8,
        batch_count=2,
        counts=RowCounts(already_shared=2, failed=1),
        failures=FAILURES,
    ),
    PullStartedV1: PullStartedV1(
        request_id="request-1",
        link_id=LINK.link_id,
        requested=8,
        batch_count=2,
        counts=RowCounts(already_shared=2, failed=1),
        failures=FAILURES,
    ),
    BatchTransferred: BatchTransferred(
        request_id="request-1",
        link_id=LINK.link_id,
        attempt="5f0c9a",
        batch_index=0,
        batch_count=2,
        counts=RowCounts(shared=3, tainted=1, deprecated=1),
    ),
    BatchTransferredV1: BatchTransferredV1(
        request_id="request-1",
        link_id=LINK.link_id,
        batch_index=0,
        batch_count=2,
        counts=RowCounts(shared=3, tainted=1, deprecated=1),
    ),
    PullCompleted: PullCompleted(
        request_id="request-1",
        link_id=LINK.link_id,
        requested=8,
        counts=COUNTS,
        failures=FAILURES,
        completed_at=AT,
    ),
    DeletionRequested: DeletionRequested(
        request_id="request-2", link=LINK, keys=KEYS, requested_at=AT
    ),
    DeletionCompleted: DeletionCompleted(
        request_id="request-2",
        link_id=LINK.link_id,
        requested=4,
        counts=DeletionCounts(unshared=2, deprecated=1, orphaned=1, failed=1),
        failures=FAILURES,
        completed_at=AT,
    ),
    DeletionCompletedV1: DeletionCompletedV1(
        request_id="request-2",
        link_id=LINK.link_id,
        requested=4,
        counts=DeletionCountsV1(unshared=2, deprecated=1, failed=1),
        failures=FAILURES,
        completed_at=AT,
    ),
    RequestRejected: RequestRejected(
        request_id=None, reason="The message is not JSON.", rejected_at=AT
    ),
    DeadLetter: DeadLetter(
        service="transfer",
        topic="link.transfers",
        partition=0,
        offset=41,
        payload="{not json",
        reason="The message is not JSON.",
        failed_at=AT,
    ),
}

MODELS = [pytest.param(model, id=model.__name__) for model in PUBLIC_MESSAGES]

PUBLISHED = {
    "deletion-completed.v1.json": (
        "ecbca527143a330223a5c5473046d9f2a66481f5f9ee4488427632deacc37b91"
    ),
    "transfer-requested.v1.json": (
        "7f55ade5c221c9a05c7347f1623520a4d5dcc39f2c237f33994cf9bf48de58cb"
    ),
    "pull-started.v1.json": (
        "9fdec5854e0168cc858781f2eb8553288d5aaa19d23f33a367367d9772a9b786"
    ),
    "batch-transferred.v1.json": (
        "3a55cb4848a064db20e684f7620925bfdd8a56106ab10a81b2e713a25e691db1"
    ),
}
"""SHA-256 of schema files as first published (deletion-completed at e139abb,
the three progress and transfer files at 8ea1d0a)."""


def published_schema(model: type[Message]) -> dict[str, Any]:
    """Return the schema file of a model, as schemas/ holds it."""
    text = (SCHEMAS_DIR / schema_file_name(model)).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def example(model: type[Message]) -> dict[str, Any]:
    """Return a valid message of the model as JSON carries it."""
    return EXAMPLES[model].model_dump(mode="json")


def test_the_schema_files_match_the_models() -> None:
    rendered = render_schemas()

    problems = drift(SCHEMAS_DIR, rendered)

    assert not problems, (
        "schemas/ is out of date with link/domain/events.py ("
        + "; ".join(problems)
        + "): run `make schemas` and commit the result."
    )


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_published_schema_file_never_changes(name: str) -> None:
    rendered = render_schemas()[name].encode()
    published = (SCHEMAS_DIR / name).read_bytes()

    # Not a description either: consumers may have validated or generated
    # code from the file; a change of the model needs a new version.
    assert hashlib.sha256(rendered).hexdigest() == PUBLISHED[name]
    assert hashlib.sha256(published).hexdigest() == PUBLISHED[name]


def test_every_model_has_a_file_and_every_file_a_model() -> None:
    files = {path.name for path in SCHEMAS_DIR.glob("*.json")} - {ASYNCAPI_FILE}

    names = {schema_file_name(model) for model in PUBLIC_MESSAGES}

    assert len(names) == len(PUBLIC_MESSAGES)
    assert names == files


def test_the_file_names_follow_the_message_types() -> None:
    name = schema_file_name(PullRequested)

    assert name == "pull-requested.v2.json"
    assert schema_file_name(PullRequestedV1) == "pull-requested.v1.json"
    assert schema_file_name(RequestRejected) == "request-rejected.v1.json"


def test_every_model_has_an_example() -> None:
    assert set(EXAMPLES) == set(PUBLIC_MESSAGES)
    assert all(type(message) is model for model, message in EXAMPLES.items())


@pytest.mark.parametrize("model", MODELS)
def test_a_schema_is_a_valid_draft_2020_12_schema_with_an_id(
    model: type[Message],
) -> None:
    schema = published_schema(model)

    Draft202012Validator.check_schema(schema)

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("urn:datajoint-link:schema:")
    version = model.model_fields["schema_version"].default
    assert schema["$id"].endswith(f":v{version}")


def test_the_schema_ids_differ() -> None:
    ids = [published_schema(model)["$id"] for model in PUBLIC_MESSAGES]

    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("model", MODELS)
def test_a_schema_accepts_a_real_message(model: type[Message]) -> None:
    validator = Draft202012Validator(published_schema(model))
    instance = example(model)

    errors = [error.message for error in validator.iter_errors(instance)]

    assert errors == []
    assert model.model_validate(instance) == EXAMPLES[model]


@pytest.mark.parametrize("model", MODELS)
def test_a_schema_rejects_an_unknown_field(model: type[Message]) -> None:
    validator = Draft202012Validator(published_schema(model))
    instance = {**example(model), "priority": "high"}

    valid = validator.is_valid(instance)

    assert not valid
    with pytest.raises(pydantic.ValidationError):
        model.model_validate(instance)


@pytest.mark.parametrize("model", MODELS)
def test_a_schema_rejects_another_schema_version(model: type[Message]) -> None:
    validator = Draft202012Validator(published_schema(model))
    instance = {**example(model), "schema_version": 99}

    valid = validator.is_valid(instance)

    assert not valid
    with pytest.raises(pydantic.ValidationError):
        model.model_validate(instance)


@pytest.mark.parametrize("model", MODELS)
def test_a_schema_rejects_another_message_type(model: type[Message]) -> None:
    validator = Draft202012Validator(published_schema(model))
    instance = {**example(model), "type": "SomethingElse"}

    valid = validator.is_valid(instance)

    assert not valid


def test_a_version_1_request_is_read_as_version_2() -> None:
    old = PullRequestedV1(request_id="request-1", link=LINK, keys=KEYS, requested_at=AT)

    new = old.upcast()

    assert new.schema_version == 2
    assert new.model_dump(exclude={"schema_version"}) == old.model_dump(
        exclude={"schema_version"}
    )


def test_a_version_1_deletion_outcome_is_read_with_none_orphaned() -> None:
    old = EXAMPLES[DeletionCompletedV1]
    assert isinstance(old, DeletionCompletedV1)

    new = old.upcast()

    assert new.schema_version == 2
    assert new.counts == DeletionCounts(unshared=2, deprecated=1, failed=1)
    assert new.counts.orphaned == 0
    assert new.model_dump(exclude={"schema_version", "counts"}) == old.model_dump(
        exclude={"schema_version", "counts"}
    )


def test_a_version_1_deletion_outcome_has_no_orphaned_count() -> None:
    validator = Draft202012Validator(published_schema(DeletionCompletedV1))
    instance = example(DeletionCompletedV1)
    instance["counts"]["orphaned"] = 0

    assert not validator.is_valid(instance)
    with pytest.raises(pydantic.ValidationError):
        DeletionCompletedV1.model_validate(instance)


@pytest.mark.parametrize(
    "older", [TransferRequestedV1, PullStartedV1, BatchTransferredV1]
)
def test_a_version_1_progress_message_is_read_as_attempt_blank(
    older: type[TransferRequestedV1 | PullStartedV1 | BatchTransferredV1],
) -> None:
    old = EXAMPLES[older]
    assert isinstance(old, older)

    new = old.upcast()

    assert new.schema_version == 2
    assert new.attempt == ""
    assert new.model_dump(
        exclude={"schema_version", "attempt", "started_from"}
    ) == old.model_dump(exclude={"schema_version"})


def test_a_version_2_request_may_name_a_registered_link() -> None:
    request = PullRequested.model_validate(
        {"request_id": "r", "link": "sessions-to-lab-b", "keys": KEYS}
    )

    assert request.link == "sessions-to-lab-b"
