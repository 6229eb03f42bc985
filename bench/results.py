"""Contains what the benchmark measured, as plain records that become JSON."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

RAW = "raw bulk copy"
RAW_RENDERED = "raw, rendered"
OLD = "old tool 0.11"
EMBEDDED = "embedded"
KAFKA_1 = "kafka, 1 worker"
KAFKA_2 = "kafka, 2 workers"


@dataclass(frozen=True)
class System:
    """One benchmarked system: how it is shown, named in schemas, and run."""

    name: str
    short: str
    kind: str
    """``raw``, ``rendered``, ``old`` or ``link``."""
    over_kafka: bool = False

    @property
    def has_helper(self) -> bool:
        """Return whether the system keeps the link's helper table."""
        return self.kind in ("old", "link")


SYSTEMS = (
    System(RAW, "raw", "raw"),
    System(RAW_RENDERED, "rawr", "rendered"),
    System(OLD, "old", "old"),
    System(EMBEDDED, "emb", "link"),
    System(KAFKA_1, "k1", "link", over_kafka=True),
    System(KAFKA_2, "k2", "link", over_kafka=True),
)


def rate(rows: int, seconds: float | None) -> float | None:
    """Return rows per second, or None when nothing was measured."""
    if seconds is None or seconds <= 0:
        return None
    return rows / seconds


def _median(samples: list[float]) -> float | None:
    return statistics.median(samples) if samples else None


def merge_peaks(
    kept: dict[str, int | None], new: dict[str, int | None]
) -> dict[str, int | None]:
    """Return the larger peak of each process over two repetitions."""
    merged = dict(kept)
    for name, peak in new.items():
        before = merged.get(name)
        merged[name] = peak if before is None else max(before, peak or 0)
    return merged


@dataclass
class BulkResult:
    """Pulls of a whole source table and deletions of its rows, repeated.

    The figures are the median over the repetitions (each into new schemas);
    the peak memory is the largest of any repetition.
    """

    system: str
    rows: int
    pull_samples: list[float] = field(default_factory=list)
    delete_samples: list[float] = field(default_factory=list)
    pull_peak_rss: dict[str, int | None] = field(default_factory=dict)
    delete_peak_rss: dict[str, int | None] = field(default_factory=dict)
    error: str | None = None

    @property
    def pull_seconds(self) -> float | None:
        """Return the median pull time."""
        return _median(self.pull_samples)

    @property
    def delete_seconds(self) -> float | None:
        """Return the median deletion time."""
        return _median(self.delete_samples)

    @property
    def pull_rate(self) -> float | None:
        """Return the pull's rows per second."""
        return rate(self.rows, self.pull_seconds)

    @property
    def delete_rate(self) -> float | None:
        """Return the deletion's rows per second."""
        return rate(self.rows, self.delete_seconds)

    def as_dict(self) -> dict[str, Any]:
        """Return the record with its rates, ready for JSON."""
        return {
            **asdict(self),
            "pull_seconds": self.pull_seconds,
            "delete_seconds": self.delete_seconds,
            "pull_rows_per_second": self.pull_rate,
            "delete_rows_per_second": self.delete_rate,
        }


@dataclass
class SingleResult:
    """Single-row pulls, one after the other, after one untimed warm-up pull."""

    system: str
    milliseconds: list[float] = field(default_factory=list)
    peak_rss: dict[str, int | None] = field(default_factory=dict)
    error: str | None = None

    @property
    def median(self) -> float | None:
        """Return the median pull time in milliseconds."""
        return statistics.median(self.milliseconds) if self.milliseconds else None

    def as_dict(self) -> dict[str, Any]:
        """Return the record with its median, ready for JSON."""
        return {**asdict(self), "median_ms": self.median}


@dataclass
class Results:
    """Everything one benchmark run measured."""

    started: str
    options: dict[str, Any]
    environment: dict[str, Any]
    bulk: list[BulkResult] = field(default_factory=list)
    single: list[SingleResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def find(self, system: str, rows: int) -> BulkResult | None:
        """Return the successful bulk result of a system at a size, if any."""
        for result in self.bulk:
            if result.system == system and result.rows == rows and not result.error:
                return result
        return None

    def find_single(self, system: str) -> SingleResult | None:
        """Return the successful single-row result of a system, if any."""
        for result in self.single:
            if result.system == system and not result.error:
                return result
        return None

    @property
    def failed(self) -> bool:
        """Return whether any run failed."""
        return any(r.error for r in self.bulk) or any(r.error for r in self.single)

    def as_dict(self) -> dict[str, Any]:
        """Return the whole run, ready for JSON."""
        return {
            "started": self.started,
            "options": self.options,
            "environment": self.environment,
            "bulk": [result.as_dict() for result in self.bulk],
            "single": [result.as_dict() for result in self.single],
            "notes": self.notes,
        }
