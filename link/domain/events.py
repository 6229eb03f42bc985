"""Contains the messages that the link's services exchange over Kafka.

These models are a public API: other systems publish requests and consume
completions as plain JSON. Each message names its ``type`` and its
``schema_version``; ``schemas/`` holds the JSON Schema generated from each model
(``make schemas``), and a test fails when the two drift apart. A change that an
old consumer could misread gets a new schema version, never a silent edit.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

KeyValue = str | int | float | bool | None
"""A primary-key value as JSON carries it: dates, UUIDs, UTC timestamps as strings."""

PrimaryKey = dict[str, KeyValue]
"""One row's primary key: attribute name to value, and nothing else."""

RequestId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_#~$-]+$")
]
AttemptId = Annotated[
    str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9._:-]*$")
]
HostAndPort = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-]+(:\d+)?$"
    ),
]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Message(BaseModel):
    """Common shape of every message: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = Field(
        default=1, description="Version of this message's schema."
    )


class LinkRef(BaseModel):
    """Names the three tables of one link; never credentials, never SQL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_host: HostAndPort = Field(description="The source server, as host:port.")
    source_schema: Identifier
    source_table: Identifier = Field(
        description="The source table's name in the database, tier prefix included."
    )
    helper_schema: Identifier
    helper_table: Identifier = Field(description="The helper table's database name.")
    destination_schema: Identifier
    destination_table: Identifier = Field(
        description="The destination table's database name."
    )
    stores: dict[Identifier, Identifier] = Field(
        default_factory=dict,
        description="Source store name to destination store name.",
        json_schema_extra={"additionalProperties": False},
    )

    @property
    def link_id(self) -> str:
        """Return a short readable name of the link, for logs and message keys."""
        return (
            f"{self.source_host}/{self.source_schema}.{self.source_table}"
            f"->{self.destination_schema}.{self.destination_table}"
        )


class RowFailure(BaseModel):
    """A row that a request named but that could not be processed, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: PrimaryKey
    reason: str


LinkName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
]
"""The name of a link in the services' registry (LINK_REGISTRY)."""


class Request(Message):
    """What every request has: an id chosen by its publisher, and the rows it names."""

    request_id: RequestId = Field(
        description="Chosen by the publisher; correlates every later event."
    )
    keys: list[PrimaryKey] = Field(
        min_length=1,
        max_length=10_000,
        description="The rows, each by its primary-key values only: dates as"
        " YYYY-MM-DD, datetimes in ISO 8601 (timestamps in UTC), UUIDs as strings.",
    )
    requested_at: datetime.datetime = Field(default_factory=_now)


class PullRequested(Request):
    """A request to pull rows, named by primary key, from source to destination.

    Published to the ``link.pull-requests`` topic, keyed by ``request_id``.
    Version 2 names the link in full or by its registry name; version 1
    messages (full link only) are still accepted and read as version 2.
    """

    schema_version: Literal[2] = Field(  # type: ignore[assignment]
        default=2, description="Version of this message's schema."
    )
    type: Literal["PullRequested"] = "PullRequested"
    link: LinkRef | LinkName = Field(
        description="The link in full, or the name of a registered link."
    )


def fingerprint(request: PullRequested) -> str:
    """Return a digest of what a pull request asks for: its link and its keys."""
    link = request.link if isinstance(request.link, str) else request.link.link_id
    # One encoder for all keys: json.dumps would build a new one per key, a
    # third of the time for a request of thousands of keys.
    encode_key = json.JSONEncoder(sort_keys=True).encode
    keys = sorted(map(encode_key, request.keys))
    return hashlib.sha256(json.dumps([link, keys]).encode()).hexdigest()


class PullRequestedV1(Request):
    """Version 1 of PullRequested: the link in full. Read as version 2."""

    type: Literal["PullRequested"] = "PullRequested"
    link: LinkRef

    def upcast(self) -> PullRequested:
        """Return the same request as version 2."""
        return PullRequested.model_validate(self.model_dump(exclude={"schema_version"}))


class TransferRequested(Message):
    """One batch of activated rows for the transfer service to copy.

    Published to ``link.transfers`` by the pull-request service, keyed by
    ``request_id/batch_index`` so that the batches of one pull spread over the
    transfer workers of the consumer group. Version 2 adds ``attempt``;
    version 1, which older services send, is read as attempt ``""``.
    """

    schema_version: Literal[2] = Field(  # type: ignore[assignment]
        default=2, description="Version of this message's schema."
    )
    type: Literal["TransferRequested"] = "TransferRequested"
    request_id: RequestId
    link: LinkRef
    attempt: AttemptId = Field(
        default="",
        description="The start of the request that cut this batch (see"
        " PullStarted.attempt); the batch's result names it again.",
    )
    batch_index: int = Field(ge=0)
    batch_count: int = Field(ge=1)
    keys: list[PrimaryKey] = Field(min_length=1)


class TransferRequestedV1(Message):
    """Version 1 of TransferRequested: no attempt. Read as version 2."""

    # Published in transfer-requested.v1.json under these words, which must
    # not change: the schema of a published version is frozen.
    model_config = ConfigDict(
        title="TransferRequested",
        json_schema_extra={
            "description": "One batch of activated rows for the transfer service"
            " to copy.\n\nPublished to ``link.transfers`` by the pull-request"
            " service, keyed by\n``request_id/batch_index`` so that the batches of"
            " one pull spread over the\ntransfer workers of the consumer group."
        },
    )

    type: Literal["TransferRequested"] = "TransferRequested"
    request_id: RequestId
    link: LinkRef
    batch_index: int = Field(ge=0)
    batch_count: int = Field(ge=1)
    keys: list[PrimaryKey] = Field(min_length=1)

    def upcast(self) -> TransferRequested:
        """Return the same batch as version 2, of attempt ``""``."""
        return TransferRequested.model_validate(
            self.model_dump(exclude={"schema_version"})
        )


class Counts(BaseModel):
    """Counts of rows by outcome: every field is a count, added field by field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __add__(self, other: Self) -> Self:
        """Add two counts field by field."""
        names = type(self).model_fields
        return type(self)(**{n: getattr(self, n) + getattr(other, n) for n in names})

    @property
    def total(self) -> int:
        """Return the number of rows counted."""
        return sum(getattr(self, name) for name in type(self).model_fields)


class RowCounts(Counts):
    """How many rows of a request ended in each outcome."""

    shared: int = Field(default=0, ge=0, description="Pulled and now Shared.")
    tainted: int = Field(
        default=0,
        ge=0,
        description="Pulled, but flagged by the source meanwhile; or Tainted"
        " (shared, then flagged) before the request.",
    )
    deprecated: int = Field(
        default=0, ge=0, description="Flagged by the source before they arrived."
    )
    already_shared: int = Field(
        default=0, ge=0, description="Shared (and not flagged) before the request."
    )
    failed: int = Field(default=0, ge=0)


class PullStarted(Message):
    """The pull-request service activated the rows of a request.

    Published to ``link.pull-progress``, keyed by ``request_id``. ``counts``
    holds the rows settled without a transfer (already shared, deprecated,
    failed); the rest travel in ``batch_count`` transfer batches. Version 2
    adds ``attempt`` and ``started_from``: a request whose start was cut
    short (a pull-request worker stopped mid-way) is started again, and only
    the latest attempt's batches count. Version 1, which older services send,
    is read as attempt ``""``.
    """

    schema_version: Literal[2] = Field(  # type: ignore[assignment]
        default=2, description="Version of this message's schema."
    )
    type: Literal["PullStarted"] = "PullStarted"
    request_id: RequestId
    link_id: str
    attempt: AttemptId = Field(
        default="",
        description="Names this start of the request. A later start of the same"
        " request, with another attempt, replaces it: the batches of the"
        " earlier attempt no longer count.",
    )
    started_from: str | None = Field(
        default=None,
        description="The request message that this attempt started from, as"
        " partition/offset of the pull-requests topic; null in embedded mode.",
    )
    requested: int = Field(ge=0, description="Rows the request named.")
    batch_count: int = Field(ge=0)
    counts: RowCounts
    failures: list[RowFailure] = Field(default_factory=list)
    fingerprint: str | None = Field(
        default=None,
        description="Digest of the request's link and keys, to tell a repeated"
        " request from a different one under the same id.",
    )


class PullStartedV1(Message):
    """Version 1 of PullStarted: no attempt. Read as version 2."""

    model_config = ConfigDict(
        title="PullStarted",
        json_schema_extra={
            "description": "The pull-request service activated the rows of a"
            " request.\n\nPublished to ``link.pull-progress``, keyed by"
            " ``request_id``. ``counts``\nholds the rows settled without a"
            " transfer (already shared, deprecated,\nfailed); the rest travel in"
            " ``batch_count`` transfer batches."
        },
    )

    type: Literal["PullStarted"] = "PullStarted"
    request_id: RequestId
    link_id: str
    requested: int = Field(ge=0, description="Rows the request named.")
    batch_count: int = Field(ge=0)
    counts: RowCounts
    failures: list[RowFailure] = Field(default_factory=list)
    fingerprint: str | None = Field(
        default=None,
        description="Digest of the request's link and keys, to tell a repeated"
        " request from a different one under the same id.",
    )

    def upcast(self) -> PullStarted:
        """Return the same start as version 2, of attempt ``""``."""
        return PullStarted.model_validate(self.model_dump(exclude={"schema_version"}))


class BatchTransferred(Message):
    """The transfer service finished one batch of a pull.

    Published to ``link.pull-progress``, keyed by ``request_id``. Version 2
    adds ``attempt``; version 1, which older services send, is read as
    attempt ``""``.
    """

    schema_version: Literal[2] = Field(  # type: ignore[assignment]
        default=2, description="Version of this message's schema."
    )
    type: Literal["BatchTransferred"] = "BatchTransferred"
    request_id: RequestId
    link_id: str
    attempt: AttemptId = Field(
        default="",
        description="The start of the request that cut this batch (see"
        " PullStarted.attempt).",
    )
    batch_index: int = Field(ge=0)
    batch_count: int = Field(ge=1)
    counts: RowCounts
    failures: list[RowFailure] = Field(default_factory=list)


class BatchTransferredV1(Message):
    """Version 1 of BatchTransferred: no attempt. Read as version 2."""

    model_config = ConfigDict(
        title="BatchTransferred",
        json_schema_extra={
            "description": "The transfer service finished one batch of a pull."
            "\n\nPublished to ``link.pull-progress``, keyed by ``request_id``."
        },
    )

    type: Literal["BatchTransferred"] = "BatchTransferred"
    request_id: RequestId
    link_id: str
    batch_index: int = Field(ge=0)
    batch_count: int = Field(ge=1)
    counts: RowCounts
    failures: list[RowFailure] = Field(default_factory=list)

    def upcast(self) -> BatchTransferred:
        """Return the same result as version 2, of attempt ``""``."""
        return BatchTransferred.model_validate(
            self.model_dump(exclude={"schema_version"})
        )


class PullCompleted(Message):
    """Every row of a pull request has reached its outcome.

    Published to ``link.completions``, keyed by ``request_id``.
    """

    type: Literal["PullCompleted"] = "PullCompleted"
    request_id: RequestId
    link_id: str
    requested: int = Field(ge=0)
    counts: RowCounts
    failures: list[RowFailure] = Field(default_factory=list)
    completed_at: datetime.datetime = Field(default_factory=_now)


class DeletionRequested(Request):
    """A request to delete rows, named by primary key, from the destination.

    Published to ``link.deletion-requests``, keyed by ``request_id``. Each row
    leaves the destination; its helper row is then removed, or marked
    deprecated when the source has flagged the row. Version 2 names the link
    in full or by its registry name; version 1 (full link only) is read as 2.
    """

    schema_version: Literal[2] = Field(  # type: ignore[assignment]
        default=2, description="Version of this message's schema."
    )
    type: Literal["DeletionRequested"] = "DeletionRequested"
    link: LinkRef | LinkName = Field(
        description="The link in full, or the name of a registered link."
    )


class DeletionRequestedV1(Request):
    """Version 1 of DeletionRequested: the link in full. Read as version 2."""

    type: Literal["DeletionRequested"] = "DeletionRequested"
    link: LinkRef

    def upcast(self) -> DeletionRequested:
        """Return the same request as version 2."""
        return DeletionRequested.model_validate(
            self.model_dump(exclude={"schema_version"})
        )


class DeletionCounts(Counts):
    """How many rows of a deletion ended in each outcome."""

    unshared: int = Field(
        default=0, ge=0, description="Deleted; the source may share them again."
    )
    deprecated: int = Field(
        default=0, ge=0, description="Deleted and deprecated: the source flagged them."
    )
    already_gone: int = Field(
        default=0, ge=0, description="Not in the destination before the request."
    )
    orphaned: int = Field(
        default=0,
        ge=0,
        description="Deleted after the source had deleted them, and their helper"
        " rows with them: they left the link altogether.",
    )
    failed: int = Field(default=0, ge=0)


class DeletionCompleted(Message):
    """Every row of a deletion request has reached its outcome.

    Published to ``link.completions``, keyed by ``request_id``. Version 2 adds
    the ``orphaned`` count; version 1, which older services send, is read as
    version 2 with no rows orphaned.
    """

    schema_version: Literal[2] = Field(  # type: ignore[assignment]
        default=2, description="Version of this message's schema."
    )
    type: Literal["DeletionCompleted"] = "DeletionCompleted"
    request_id: RequestId
    link_id: str
    requested: int = Field(ge=0)
    counts: DeletionCounts
    failures: list[RowFailure] = Field(default_factory=list)
    completed_at: datetime.datetime = Field(default_factory=_now)


class DeletionCountsV1(Counts):
    """Version 1 of DeletionCounts: no orphaned count."""

    # Published in deletion-completed.v1.json under these names and words,
    # which must not change: the schema of a published version is frozen.
    model_config = ConfigDict(
        title="DeletionCounts",
        json_schema_extra={
            "description": "How many rows of a deletion ended in each outcome."
        },
    )

    unshared: int = Field(
        default=0, ge=0, description="Deleted; the source may share them again."
    )
    deprecated: int = Field(
        default=0, ge=0, description="Deleted and deprecated: the source flagged them."
    )
    already_gone: int = Field(
        default=0, ge=0, description="Not in the destination before the request."
    )
    failed: int = Field(default=0, ge=0)


class DeletionCompletedV1(Message):
    """Version 1 of DeletionCompleted: no orphaned count. Read as version 2."""

    model_config = ConfigDict(
        title="DeletionCompleted",
        json_schema_extra={
            "description": "Every row of a deletion request has reached its"
            " outcome.\n\nPublished to ``link.completions``, keyed by"
            " ``request_id``."
        },
    )

    type: Literal["DeletionCompleted"] = "DeletionCompleted"
    request_id: RequestId
    link_id: str
    requested: int = Field(ge=0)
    counts: DeletionCountsV1
    failures: list[RowFailure] = Field(default_factory=list)
    completed_at: datetime.datetime = Field(default_factory=_now)

    def upcast(self) -> DeletionCompleted:
        """Return the same outcome as version 2, with no rows orphaned."""
        return DeletionCompleted.model_validate(
            self.model_dump(exclude={"schema_version"})
        )


class RequestRejected(Message):
    """A request could not be carried out at all; nothing was changed.

    Published to ``link.completions``, keyed by ``request_id`` when the
    request had a readable one.
    """

    type: Literal["RequestRejected"] = "RequestRejected"
    request_id: str | None = Field(
        description="The request's id, or null when it could not be read."
    )
    reason: str
    rejected_at: datetime.datetime = Field(default_factory=_now)


class DeadLetter(Message):
    """A message that a service could not process, kept with the reason.

    Published to ``link.dead-letters``; ``payload`` is the original message
    text (bytes that are not UTF-8 are replaced), cut after 64 KiB.
    """

    type: Literal["DeadLetter"] = "DeadLetter"
    service: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    payload: str = Field(
        description="The original message, cut after its first 64 KiB."
    )
    payload_bytes: int = Field(
        default=0, ge=0, description="The original message's size in bytes."
    )
    reason: str
    failed_at: datetime.datetime = Field(default_factory=_now)


PUBLIC_MESSAGES: tuple[type[Message], ...] = (
    PullRequested,
    PullRequestedV1,
    TransferRequested,
    TransferRequestedV1,
    PullStarted,
    PullStartedV1,
    BatchTransferred,
    BatchTransferredV1,
    PullCompleted,
    DeletionRequested,
    DeletionRequestedV1,
    DeletionCompleted,
    DeletionCompletedV1,
    RequestRejected,
    DeadLetter,
)
"""Every message model; each has a JSON Schema file in ``schemas/``."""

REQUEST_VERSIONS: dict[str, dict[int, type[Message]]] = {
    "PullRequested": {1: PullRequestedV1, 2: PullRequested},
    "DeletionRequested": {1: DeletionRequestedV1, 2: DeletionRequested},
    "TransferRequested": {1: TransferRequestedV1, 2: TransferRequested},
}
"""The versions of each request that the services read, oldest first."""

EVENT_VERSIONS: dict[str, dict[int, type[Message]]] = {
    "DeletionCompleted": {1: DeletionCompletedV1, 2: DeletionCompleted},
    "PullStarted": {1: PullStartedV1, 2: PullStarted},
    "BatchTransferred": {1: BatchTransferredV1, 2: BatchTransferred},
}
"""The versions of each event that the library reads, where it reads more than
one, oldest first; of every other event it reads version 1 only."""
