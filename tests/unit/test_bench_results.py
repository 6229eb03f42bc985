"""Tests of how the benchmark sums up repeated timings (no servers)."""

from __future__ import annotations

from bench.report import check_targets, render
from bench.results import KAFKA_1, RAW, BulkResult, Results, merge_peaks


def test_a_repeated_pull_is_reported_by_its_median() -> None:
    result = BulkResult(system=RAW, rows=2_000, pull_samples=[0.30, 0.10, 0.20])

    assert result.pull_seconds == 0.20
    assert result.pull_rate == 10_000
    assert result.delete_seconds is None


def test_the_peak_memory_of_repetitions_is_the_largest_of_each_process() -> None:
    merged = merge_peaks({"user": 100, "pr": None}, {"user": 90, "pr": 50, "t1": 7})

    assert merged == {"user": 100, "pr": 50, "t1": 7}


def test_the_report_shows_the_median_and_the_range() -> None:
    results = Results(
        started="2026-12-03T00:00:00",
        options={"repeat": 3},
        environment={},
        bulk=[BulkResult(system=RAW, rows=2_000, pull_samples=[0.30, 0.10, 0.20])],
    )

    report = render(results)

    assert "median of 3 pull(s)" in report
    line = next(line for line in report.splitlines() if line.startswith(RAW))
    assert "0.20" in line
    assert "0.10-0.30" in line
    assert "10,000" in line


def test_a_share_just_under_the_target_does_not_print_as_the_target() -> None:
    results = Results(
        started="2026-12-03T00:00:00",
        options={"repeat": 1},
        environment={},
        bulk=[
            BulkResult(system=RAW, rows=2_000, pull_samples=[0.1394]),
            BulkResult(system=KAFKA_1, rows=2_000, pull_samples=[0.2]),
        ],
    )

    [line] = [line for line in check_targets(results) if "over Kafka" in line]

    assert line.startswith("MISS")
    assert "69.7%" in line
