"""How a pull's keys are cut into requests over Kafka (no servers)."""

from __future__ import annotations

import pytest

from link.domain.events import PrimaryKey
from link.executors import growing_slices


def keys(count: int) -> list[PrimaryKey]:
    return [{"id": index} for index in range(count)]


def test_slices_double_from_one_batch_up_to_the_request_size() -> None:
    sizes = [len(part) for part in growing_slices(keys(20_000), 500, 5_000)]
    assert sizes == [500, 1_000, 2_000, 4_000, 5_000, 5_000, 2_500]


def test_every_key_is_in_one_slice_in_order() -> None:
    given = keys(1_234)
    slices = growing_slices(given, 10, 100)
    assert [key for part in slices for key in part] == given


@pytest.mark.parametrize(("first", "largest"), [(5_000, 500), (0, 3)])
def test_the_first_slice_never_exceeds_the_largest_nor_is_empty(
    first: int, largest: int
) -> None:
    slices = growing_slices(keys(7), first, largest)
    assert all(0 < len(part) <= largest for part in slices)


def test_no_keys_make_no_slices() -> None:
    assert growing_slices([], 500, 5_000) == []
