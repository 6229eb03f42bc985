"""Contains the bookkeeping that turns a pull's batch results into a completion."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from link.domain.events import (
    BatchTransferred,
    PullCompleted,
    PullStarted,
    RowFailure,
)

MAX_REPORTED_FAILURES = 1_000
"""Failures listed in one completion; the count covers them all."""


class PullProgress(BaseModel):
    """What is known of one pull request so far.

    Events may arrive more than once and the start may arrive after a batch, so
    the batches are kept by index: adding the same batch twice changes nothing.
    """

    model_config = ConfigDict(frozen=True)

    request_id: str
    link_id: str = ""
    start: PullStarted | None = None
    batches: dict[int, BatchTransferred] = Field(default_factory=dict)
    completed: bool = False
    outcome: PullCompleted | None = None
    fingerprint: str | None = None

    def with_start(self, event: PullStarted) -> PullProgress:
        """Record that the pull started; a repeated start changes nothing."""
        if self.start is not None:
            return self
        return self.model_copy(
            update={
                "start": event,
                "link_id": event.link_id,
                "fingerprint": event.fingerprint,
            }
        )

    def with_batch(self, event: BatchTransferred) -> PullProgress:
        """Record one finished batch; a repeated batch changes nothing."""
        if event.batch_index in self.batches:
            return self
        batches = {**self.batches, event.batch_index: event}
        return self.model_copy(update={"batches": batches, "link_id": event.link_id})

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
