"""How a pull's keys are cut into requests over Kafka (no servers)."""

from __future__ import annotations

import pytest

from link.domain.events import PrimaryKey, PullRequested
from link.executors import growing_slices, requests_within
from tests.unit.fakes import LINK


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


def long_keys(count: int) -> list[PrimaryKey]:
    return [{"name": f"{index:0>250}"} for index in range(count)]


def pull_request(request_id: str, chunk: list[PrimaryKey]) -> PullRequested:
    return PullRequested(request_id=request_id, link=LINK, keys=chunk)


def test_requests_over_the_size_limit_are_halved_until_they_fit() -> None:
    given = long_keys(1_000)  # about 270 kB as one request

    built = requests_within([given], pull_request, 64 * 1024)

    assert len(built) > 1
    assert all(len(message) <= 64 * 1024 for _, message in built)
    assert [key for request, _ in built for key in request.keys] == given
    assert len({request.request_id for request, _ in built}) == len(built)


def test_each_message_is_its_request_serialized() -> None:
    built = requests_within([long_keys(3), long_keys(2)], pull_request, 1 << 20)

    assert [len(request.keys) for request, _ in built] == [3, 2]
    for request, message in built:
        assert PullRequested.model_validate_json(message) == request


def test_a_single_key_over_the_limit_stays_whole_for_the_services_to_refuse() -> None:
    built = requests_within([long_keys(2)], pull_request, 512)

    assert [len(request.keys) for request, _ in built] == [1, 1]
    assert all(len(message) > 512 for _, message in built)
