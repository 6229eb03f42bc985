"""Contains what the handlers need from a link's tables, as protocols.

The real gateway (``link.adapters.gateway.LinkGateway``) and the unit tests'
in-memory one both satisfy them; tests/integration/test_gateway_contract.py
holds the two to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from link.domain.events import LinkRef
from link.domain.keys import CanonicalKey, KeyCodec
from link.domain.lifecycle import HelperRow, Observation


class RowsGateway(Protocol):
    """Reading the state of a link's rows."""

    link: LinkRef
    codec: KeyCodec

    def observe(
        self, keys: Sequence[CanonicalKey], *, helper_implies_source: bool = False
    ) -> dict[CanonicalKey, Observation]:
        """Return where each row is present; see LinkGateway.observe."""

    def read_helper(
        self, keys: Sequence[CanonicalKey]
    ) -> dict[CanonicalKey, HelperRow]:
        """Return the helper rows of the keys that have one."""

    def deprecate(self, keys: Sequence[CanonicalKey]) -> int:
        """Mark flagged rows out of the destination as deprecated."""


class PullGateway(RowsGateway, Protocol):
    """What the pull handlers need from the link's tables."""

    def activate(self, keys: Sequence[CanonicalKey]) -> int:
        """Insert helper rows with process PULL."""

    def activate_unshared(self, keys: Sequence[CanonicalKey]) -> bool:
        """Activate all the rows if all are Unshared; else change nothing."""

    def reactivate(self, keys: Sequence[CanonicalKey]) -> int:
        """Put deprecated, unflagged rows back into process PULL."""

    def all_pulling(self, keys: Sequence[CanonicalKey]) -> bool:
        """Return whether every row's helper row is unflagged and in process PULL."""

    def finish(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Set process NONE on received rows; return (shared, tainted)."""

    def copy(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Copy rows and their parts to the destination."""


class DeletionGateway(RowsGateway, Protocol):
    """What the deletion handler needs from the link's tables."""

    def mark_deleting(self, keys: Sequence[CanonicalKey]) -> int:
        """Set process DELETE on shared rows."""

    def remove_from_destination(self, keys: Sequence[CanonicalKey]) -> tuple[int, int]:
        """Delete rows and their parts from the destination."""

    def remove_helper(self, keys: Sequence[CanonicalKey]) -> int:
        """Delete the helper rows of unflagged deleted rows."""
