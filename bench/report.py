"""Contains the printed report of a benchmark run and its check of the targets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench.results import (
    EMBEDDED,
    KAFKA_1,
    KAFKA_2,
    OLD,
    RAW,
    RAW_RENDERED,
    BulkResult,
    Results,
)

MEGABYTE = 1_000_000
KAFKA_SHARE_OF_RAW = 0.70
MEMORY_LIMIT = 300 * MEGABYTE
KAFKA_SINGLE_MS = 100.0
DELETION_FACTOR = 50.0


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, reference: float | None, percent: bool) -> str:
    if value is None or not reference:
        return "-"
    share = value / reference
    return f"{share:.0%}" if percent else f"{share:,.1f}x"


PROCESS_NAMES = {
    "user": "user",
    "pull-requests": "pr",
    "deletion-reconciler": "dr",
    "transfer-1": "t1",
    "transfer-2": "t2",
}
LEGEND = (
    "peak RSS in MB: user = the process that calls pull/delete (or copies);"
    " pr = pull-request service,\nt1/t2 = transfer workers, dr = deletion"
    " reconciler. * = against the older tool's rows/s at its largest size.\n"
    "raw bulk copy: PyMySQL reads and escapes every value (the issue's limit);"
    " raw, rendered: the\nsource server writes each row as an SQL literal, as the"
    " link's own copy does."
)


def _megabytes(size: int | None) -> str:
    return _number(None if size is None else size / MEGABYTE)


def _peaks(peaks: dict[str, int | None]) -> str:
    order = list(PROCESS_NAMES)

    def position(name: str) -> int:
        return order.index(name) if name in order else len(order)

    return " ".join(
        f"{PROCESS_NAMES.get(name, name)} {_megabytes(peaks[name])}"
        for name in sorted(peaks, key=position)
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.insert(1, "-" * max(len(line) for line in lines))
    return lines


def _reference(results: Results, system: str, rows: int) -> float | None:
    found = results.find(system, rows)
    return None if found is None else found.pull_rate


def _old_result(results: Results, rows: int) -> tuple[BulkResult | None, bool]:
    """Return the older tool's result at this size, or at its largest size.

    The older tool handles one row at a time, so its rows/s barely depend on
    the table size: its largest measured size stands in for larger ones, and
    the second value says so (the report marks such ratios with *).
    """
    found = results.find(OLD, rows)
    if found is not None:
        return found, False
    measured = [r for r in results.bulk if r.system == OLD and not r.error]
    if not measured:
        return None, False
    return max(measured, key=lambda r: r.rows), True


def _old_ratio(value: float | None, results: Results, rows: int, pull: bool) -> str:
    old, stand_in = _old_result(results, rows)
    if old is None:
        return "-"
    reference = old.pull_rate if pull else old.delete_rate
    ratio = _ratio(value, reference, False)
    return ratio + "*" if stand_in and ratio != "-" else ratio


def _delete_reference(results: Results, rows: int) -> float | None:
    old, _stand_in = _old_result(results, rows)
    return None if old is None else old.delete_rate


def _spread(samples: list[float]) -> str:
    """Return the fastest and slowest of repeated timings, or "-" for one."""
    if len(samples) < 2:
        return "-"
    return f"{min(samples):.2f}-{max(samples):.2f}"


def _bulk_row(results: Results, result: BulkResult) -> list[str]:
    if result.error:
        first = result.error.strip().splitlines()[-1][:70]
        return [result.system, f"{result.rows:,}", "FAILED", "", "", "", "", "", first]
    return [
        result.system,
        f"{result.rows:,}",
        _number(result.pull_seconds, 2),
        _spread(result.pull_samples),
        _number(result.pull_rate),
        _old_ratio(result.pull_rate, results, result.rows, pull=True),
        _ratio(result.pull_rate, _reference(results, RAW, result.rows), True),
        _ratio(result.pull_rate, _reference(results, RAW_RENDERED, result.rows), True),
        _peaks(result.pull_peak_rss),
    ]


def render(results: Results) -> str:
    """Return the report: pulls, deletions, single-row pulls, targets."""
    repeat = results.options.get("repeat", 1)
    lines = [
        f"Benchmark of {results.started}: {results.environment.get('note', '')}",
        "",
        "Pulls of whole tables (each row has 5 part rows); seconds: the median of"
        f" {repeat} pull(s) into new schemas, range: fastest-slowest",
    ]
    lines += _table(
        [
            "system",
            "rows",
            "seconds",
            "range",
            "rows/s",
            "vs old",
            "of raw",
            "of rendered",
            "peak RSS",
        ],
        (_bulk_row(results, result) for result in results.bulk),
    )
    lines += [
        "",
        "Deletions of the pulled rows, flagged (they end deprecated); median and"
        " range as above",
    ]
    lines += _table(
        ["system", "rows", "seconds", "range", "rows/s", "vs old", "peak RSS"],
        (
            [
                r.system,
                f"{r.rows:,}",
                _number(r.delete_seconds, 2),
                _spread(r.delete_samples),
                _number(r.delete_rate),
                _old_ratio(r.delete_rate, results, r.rows, pull=False),
                _peaks(r.delete_peak_rss),
            ]
            for r in results.bulk
            if not r.error and r.delete_seconds is not None
        ),
    )
    lines += ["", "Single-row pulls, one after the other (after one warm-up pull)"]
    lines += _table(
        ["system", "pulls", "median ms", "min ms", "max ms", "peak RSS"],
        (
            [
                r.system,
                str(len(r.milliseconds)),
                _number(r.median, 1),
                _number(min(r.milliseconds, default=None), 1),
                _number(max(r.milliseconds, default=None), 1),
                "FAILED: " + r.error.strip().splitlines()[-1][:60]
                if r.error
                else _peaks(r.peak_rss),
            ]
            for r in results.single
        ),
    )
    lines += ["", LEGEND, "", "Targets"]
    lines += [f"  {line}" for line in check_targets(results)]
    lines += [f"  note: {note}" for note in results.notes]
    return "\n".join(lines)


FEW_SINGLE_PULLS = 20
"""The target's count of single-row pulls; fewer leave the median to the first."""


def _verdict(met: bool) -> str:
    return "MET " if met else "MISS"


def check_targets(results: Results) -> list[str]:
    """Return one line per target that this run measured: met or missed."""
    lines: list[str] = []
    sizes = sorted({r.rows for r in results.bulk})
    for rows in sizes:
        kafka, raw = results.find(KAFKA_1, rows), results.find(RAW, rows)
        if kafka and raw and kafka.pull_rate and raw.pull_rate:
            share = kafka.pull_rate / raw.pull_rate
            lines.append(
                f"{_verdict(share >= KAFKA_SHARE_OF_RAW)} {rows:,} rows over Kafka,"
                f" 1 worker: {share:.1%} of the raw copy's rows/s (target 70%)"
            )
        rendered = results.find(RAW_RENDERED, rows)
        if kafka and rendered and kafka.pull_rate and rendered.pull_rate:
            lines.append(
                f"info {rows:,} rows over Kafka, 1 worker:"
                f" {kafka.pull_rate / rendered.pull_rate:.0%} of the rendered raw"
                " copy's rows/s (the copy the link's own technique allows)"
            )
    large = results.options.get("large")
    if large:
        for system in (EMBEDDED, KAFKA_1):
            found = results.find(system, large)
            if found is None:
                continue
            peaks = {**found.pull_peak_rss, **found.delete_peak_rss}
            worst = max(peaks.items(), key=lambda item: item[1] or 0)
            lines.append(
                f"{_verdict((worst[1] or 0) < MEMORY_LIMIT)} {large:,} rows"
                f" {system}: largest process {worst[0]} at"
                f" {_number((worst[1] or 0) / MEGABYTE)} MB (target < 300 MB)"
            )
    old_single = results.find_single(OLD)
    embedded_single = results.find_single(EMBEDDED)
    if embedded_single and embedded_single.median is not None:
        reference = old_single.median if old_single else None
        if reference is not None:
            lines.append(
                f"{_verdict(embedded_single.median <= reference)} single-row pull"
                f" embedded: median {embedded_single.median:.1f} ms, older tool"
                f" {reference:.1f} ms (target: no slower)"
            )
    for system in (KAFKA_1, KAFKA_2):
        single = results.find_single(system)
        if single and single.median is not None:
            lines.append(
                f"{_verdict(single.median < KAFKA_SINGLE_MS)} single-row pull"
                f" {system}: median {single.median:.1f} ms (target < 100 ms)"
            )
            if len(single.milliseconds) < FEW_SINGLE_PULLS:
                lines.append(
                    f"     (only {len(single.milliseconds)} pulls: the first ones after"
                    " the services start take 100 ms and more and can decide the"
                    " median; the target is for 20)"
                )
    for result in results.bulk:
        reference = _delete_reference(results, result.rows)
        measured = result.delete_seconds is not None and not result.error
        if result.system in (RAW, RAW_RENDERED, OLD) or not measured or not reference:
            continue
        factor = (result.delete_rate or 0) / reference
        lines.append(
            f"{_verdict(factor >= DELETION_FACTOR)} deletion {result.system},"
            f" {result.rows:,} rows: {factor:,.0f}x the older tool's rows/s"
            " (target 50x)"
        )
    return lines or ["(none measured)"]
