"""Contains an in-memory gateway for the handlers' unit tests.

It keeps the three tables of one link in memory and applies the same guards
as the real gateway's SQL. The real gateway is tested against the real
servers in tests/integration and tests/e2e.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from link.domain.events import (
    KeyValue,
    LinkRef,
    PrimaryKey,
    PullRequested,
    TransferRequested,
)
from link.domain.keys import CanonicalKey, KeyAttribute, KeyCodec, KeyKind
from link.domain.lifecycle import HelperRow, Observation, Process, State, classify
from link.errors import RowsAlreadyCopiedError
from link.service_layer.ports import DeletionGateway, PullGateway
from link.service_layer.pulls import start_pull

LINK = LinkRef(
    source_host="source.example:3306",
    source_schema="lab",
    source_table="session",
    helper_schema="lab_link",
    helper_table="session_helper",
    destination_schema="lab_copy",
    destination_table="session",
)
CODEC = KeyCodec((KeyAttribute("subject_id", KeyKind.INTEGER),))


class InMemoryGateway:
    """Keeps the three tables of one link in memory, with the real writes' guards."""

    def __init__(self, source: Sequence[int] = (), parts_per_row: int = 0) -> None:
        """Start with the given rows in the source, none elsewhere."""
        self.link = LINK
        self.codec = CODEC
        self.source: set[CanonicalKey] = {(key,) for key in source}
        self.helper: dict[CanonicalKey, HelperRow] = {}
        self.destination: set[CanonicalKey] = set()
        self.parts_per_row = parts_per_row
        self.copied: list[CanonicalKey] = []
        self.flag_while_copying: set[CanonicalKey] = set()
        self.copy_attempts = 0
        self.observations = 0

    def observe(
        self, keys: Sequence[CanonicalKey], *, helper_implies_source: bool = False
    ) -> dict[CanonicalKey, Observation]:
        """Return where each row is present, as the real gateway does."""
        self.observations += 1
        return {
            key: Observation(
                in_source=helper_implies_source or key in self.source,
                helper=self.helper.get(key),
                in_destination=key in self.destination,
            )
            for key in keys
        }

    def read_helper(
        self, keys: Sequence[CanonicalKey]
    ) -> dict[CanonicalKey, HelperRow]:
        """Return the helper rows of the keys that have one."""
        return {key: self.helper[key] for key in keys if key in self.helper}

    def all_pulling(self, keys: Sequence[CanonicalKey]) -> bool:
        """Return whether every row's helper row is unflagged and in process PULL."""
        pulling = HelperRow(process=Process.PULL, is_flagged=False, is_deprecated=False)
        return all(self.helper.get(key) == pulling for key in keys)

    def activate(self, keys: Sequence[CanonicalKey]) -> int:
        """Insert helper rows with process PULL, keeping rows that exist."""
        for key in keys:
            self.helper.setdefault(key, HelperRow(Process.PULL, False, False))
        return len(keys)

    def activate_unshared(self, keys: Sequence[CanonicalKey]) -> bool:
        """Activate all the rows if all are in the source only; else change nothing."""
        if any(
            key not in self.source or key in self.helper or key in self.destination
            for key in keys
        ):
            return False
        for key in keys:
            self.helper[key] = HelperRow(Process.PULL, False, False)
        return True

    def reactivate(self, keys: Sequence[CanonicalKey]) -> int:
        """Put deprecated, unflagged rows back into process PULL."""
        changed = 0
        for key in keys:
            row = self.helper.get(key)
            if row == HelperRow(Process.NONE, False, True):
                self.helper[key] = HelperRow(Process.PULL, False, False)
                changed += 1
        return changed

    def finish(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Set process NONE on rows in process PULL; return (shared, tainted)."""
        shared = tainted = 0
        for key in keys:
            row = self.helper.get(key)
            if row is not None and row.process is Process.PULL:
                self.helper[key] = dataclasses.replace(row, process=Process.NONE)
                tainted += row.is_flagged
                shared += not row.is_flagged
        return shared, tainted

    def deprecate(self, keys: Sequence[CanonicalKey]) -> int:
        """Mark flagged rows in process PULL or DELETE as deprecated."""
        changed = 0
        for key in keys:
            row = self.helper.get(key)
            if row is not None and row.process is not Process.NONE and row.is_flagged:
                self.helper[key] = HelperRow(Process.NONE, True, True)
                changed += 1
        return changed

    def mark_deleting(self, keys: Sequence[CanonicalKey]) -> int:
        """Set process DELETE on rows in process NONE that are not deprecated."""
        changed = 0
        for key in keys:
            row = self.helper.get(key)
            if (
                row is not None
                and row.process is Process.NONE
                and not row.is_deprecated
            ):
                self.helper[key] = dataclasses.replace(row, process=Process.DELETE)
                changed += 1
        return changed

    def remove_from_destination(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Delete rows from the destination."""
        present = [key for key in keys if key in self.destination]
        self.destination.difference_update(present)
        return len(present), len(present) * self.parts_per_row

    def remove_helper(self, keys: Sequence[CanonicalKey]) -> int:
        """Delete the helper rows of unflagged rows in process DELETE."""
        removed = 0
        for key in keys:
            row = self.helper.get(key)
            if row is not None and row.process is Process.DELETE and not row.is_flagged:
                del self.helper[key]
                removed += 1
        return removed

    def unfinished(self, limit: int) -> dict[Process, list[CanonicalKey]]:
        """Return rows whose helper row is in PULL or DELETE."""
        found: dict[Process, list[CanonicalKey]] = {
            Process.PULL: [],
            Process.DELETE: [],
        }
        for key, row in sorted(self.helper.items())[:limit]:
            if row.process is not Process.NONE:
                found[row.process].append(key)
        return found

    def copy(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Copy rows to the destination; none if one of them is there already."""
        self.copy_attempts += 1
        for key in keys:
            assert key in self.source, f"copy of {key} that is not in the source"
        if any(key in self.destination for key in keys):
            raise RowsAlreadyCopiedError("some rows of the batch are there already")
        self.destination.update(keys)
        self.copied.extend(keys)
        for key in self.flag_while_copying.intersection(keys):
            self._flag(key)
        return len(keys), len(keys) * self.parts_per_row

    # -- what the source's operators and the other services do --------------------

    def _flag(self, key: CanonicalKey) -> None:
        self.helper[key] = dataclasses.replace(self.helper[key], is_flagged=True)

    def flag(self, subject_id: int) -> None:
        """Flag a row, as the source's operators do."""
        self._flag((subject_id,))

    def share(self, subject_id: int, *, flagged: bool = False) -> None:
        """Put a row in Shared (or Tainted) directly."""
        key = (subject_id,)
        self.source.add(key)
        self.helper[key] = HelperRow(Process.NONE, flagged, False)
        self.destination.add(key)

    def state(self, subject_id: int) -> State:
        """Return the state of a row."""
        key: CanonicalKey = (subject_id,)
        return classify(self.observe([key])[key])


def keys_of(*subject_ids: KeyValue) -> list[PrimaryKey]:
    """Return the message form of the keys."""
    return [{"subject_id": subject_id} for subject_id in subject_ids]


def pull_request(*subject_ids: KeyValue) -> PullRequested:
    """Return a pull request for the rows."""
    return PullRequested(request_id="request-1", link=LINK, keys=keys_of(*subject_ids))


def pulled(gateway: InMemoryGateway, *subject_ids: int) -> TransferRequested:
    """Start a pull of the rows and return its only transfer batch."""
    batches = start_pull(pull_request(*subject_ids), gateway, batch_size=100).batches
    assert len(batches) == 1
    return batches[0]


def conforms(gateway: InMemoryGateway) -> tuple[PullGateway, DeletionGateway]:
    """Let the type checker hold the fake to the handlers' protocols."""
    return gateway, gateway
