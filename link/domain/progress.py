"""Contains the bookkeeping that turns a pull's batch results into a completion."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from link.domain.events import (
    BatchTransferred,
    BatchTransferredV1,
    PullCompleted,
    PullStarted,
    PullStartedV1,
    RowFailure,
)

MAX_REPORTED_FAILURES = 1_000
"""Failures listed in one completion; the count covers them all."""


class PullProgress(BaseModel):
    """What is known of one pull request so far.

    Events may arrive more than once and the start may arrive after a batch, so
    the batches are kept by index: adding the same batch twice changes nothing.

    A request can be started more than once: when a pull-request worker stops
    after announcing a start and before handing over every batch, Kafka
    delivers the request again and the service starts it anew, under another
    attempt. The latest start counts, with its own batches; the batches of an
    earlier attempt are set aside, as its rows are counted by the new start
    (shared ones as already shared) or travel again in the new batches.
    """

    model_config = ConfigDict(frozen=True)

    request_id: str
    link_id: str = ""
    start: PullStarted | None = None
    batches: dict[int, BatchTransferred] = Field(
        default_factory=dict, description="The batches of the start's attempt."
    )
    early: list[BatchTransferred] = Field(
        default_factory=list,
        description="Batches of an attempt whose start has not come in yet.",
    )
    superseded: list[str] = Field(
        default_factory=list, description="Attempts that a later start replaced."
    )
    completed: bool = False
    outcome: PullCompleted | None = None
    fingerprint: str | None = None

    @field_validator("start", mode="before")
    @classmethod
    def _read_older_start(cls, value: Any) -> Any:
        """Read a start kept by an older release (version 1) as version 2."""
        if isinstance(value, dict) and value.get("schema_version") == 1:
            return PullStartedV1.model_validate(value).upcast()
        return value

    @field_validator("batches", mode="before")
    @classmethod
    def _read_older_batches(cls, value: Any) -> Any:
        """Read batches kept by an older release (version 1) as version 2."""
        if not isinstance(value, dict):
            return value
        return {
            index: BatchTransferredV1.model_validate(batch).upcast()
            if isinstance(batch, dict) and batch.get("schema_version") == 1
            else batch
            for index, batch in value.items()
        }

    def with_start(self, event: PullStarted) -> PullProgress:
        """Record a start; a repeated or superseded start changes nothing.

        A start of another attempt replaces the one recorded: starts of one
        request share its partition, so a later one is the newer attempt.
        """
        if self.start is not None and (
            event.attempt == self.start.attempt or event.attempt in self.superseded
        ):
            return self
        superseded = self.superseded + ([self.start.attempt] if self.start else [])
        return self.model_copy(
            update={
                "start": event,
                "link_id": event.link_id,
                "fingerprint": event.fingerprint or self.fingerprint,
                "batches": {
                    batch.batch_index: batch
                    for batch in self.early
                    if batch.attempt == event.attempt
                },
                "early": [
                    batch
                    for batch in self.early
                    if batch.attempt != event.attempt
                    and batch.attempt not in superseded
                ],
                "superseded": superseded,
            }
        )

    def with_batch(self, event: BatchTransferred) -> PullProgress:
        """Record one finished batch; a repeated batch changes nothing."""
        if event.attempt in self.superseded:
            return self
        if self.start is not None and event.attempt == self.start.attempt:
            if event.batch_index in self.batches:
                return self
            batches = {**self.batches, event.batch_index: event}
            return self.model_copy(
                update={"batches": batches, "link_id": event.link_id}
            )
        if any(
            batch.attempt == event.attempt and batch.batch_index == event.batch_index
            for batch in self.early
        ):
            return self
        return self.model_copy(
            update={"early": [*self.early, event], "link_id": event.link_id}
        )

    @property
    def rows_done(self) -> int:
        """Return the rows whose outcome is known."""
        done = sum(batch.counts.total for batch in self.batches.values())
        return done + (self.start.counts.total if self.start else 0)

    def completion(self) -> PullCompleted | None:
        """Return the completion event once every batch is in, else None."""
        if self.start is None:
            return None
        if any(index not in self.batches for index in range(self.start.batch_count)):
            return None
        counts = self.start.counts
        failures: list[RowFailure] = list(self.start.failures)
        for index in sorted(self.batches):
            counts = counts + self.batches[index].counts
            failures.extend(self.batches[index].failures)
        return PullCompleted(
            request_id=self.request_id,
            link_id=self.start.link_id,
            requested=self.start.requested,
            counts=counts,
            failures=failures[:MAX_REPORTED_FAILURES],
        )

    def settled(self, outcome: PullCompleted) -> PullProgress:
        """Return what is kept of a completed request: its outcome, not its batches."""
        return PullProgress(
            request_id=self.request_id,
            link_id=self.link_id,
            fingerprint=self.fingerprint,
            completed=True,
            outcome=outcome,
        )


def completed_before(kept: Mapping[str, Any], moment: datetime.datetime) -> bool:
    """Return whether progress kept as JSON holds an outcome older than moment.

    Read from the JSON without building the model: the pull-request service
    checks every request it keeps, and only the completion time matters.
    """
    outcome = kept.get("outcome")
    if not isinstance(outcome, Mapping):
        return False
    completed_at = outcome.get("completed_at")
    if not isinstance(completed_at, str):
        return False
    try:
        when = datetime.datetime.fromisoformat(completed_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when < moment
