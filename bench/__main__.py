"""Contains ``python -m bench``: the whole benchmark, from data to report."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from datetime import datetime

from bench.dataset import create_source, drop_schemas
from bench.oldvenv import ensure_old_venv
from bench.processes import ServiceStack
from bench.report import render
from bench.results import (
    EMBEDDED,
    KAFKA_1,
    KAFKA_2,
    OLD,
    RAW,
    RAW_RENDERED,
    SYSTEMS,
    BulkResult,
    Results,
    System,
)
from bench.runner import Runner
from bench.settings import REPOSITORY, STATE, Servers, SetupError

logger = logging.getLogger("bench")


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of row counts: {text}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("row counts must be positive")
    return sizes


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Pull the same rows with the older tool (datajoint-link 0.11), this"
            " project embedded and over Kafka (1 and 2 transfer workers), and a raw"
            " bulk copy; print rows/s, ratios, peak memory, deletion speed and"
            " single-row pull times."
        ),
    )
    parser.add_argument(
        "--rows",
        type=_sizes,
        default=[2_000, 20_000],
        help="table sizes to pull, comma-separated (default 2000,20000)",
    )
    parser.add_argument(
        "--old-tool-max",
        type=int,
        default=2_000,
        help="largest size the older tool pulls, at about 100 rows/s (default 2000)",
    )
    parser.add_argument(
        "--skip-old", action="store_true", help="leave the older tool out"
    )
    parser.add_argument(
        "--large",
        type=int,
        nargs="?",
        const=100_000,
        default=0,
        help=(
            "also pull this many rows (100000 if no number is given) with the raw"
            " copy, embedded and over Kafka with one worker: the memory run"
        ),
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        help=(
            "pulls (and deletions) per system and size, each into new schemas;"
            " the report gives the median (default 3; the --large run pulls once)"
        ),
    )
    parser.add_argument(
        "--single",
        type=int,
        default=20,
        help=(
            "single-row pulls per system, after one warm-up (default 20; 0: none)."
            " Over Kafka the first pulls after the services start take 100 ms and"
            " more: with a handful of pulls they decide the median"
        ),
    )
    parser.add_argument(
        "--systems",
        default=",".join(system.short for system in SYSTEMS),
        help="systems to run, of raw,rawr,old,emb,k1,k2 (default all)",
    )
    return parser.parse_args(argv)


def _environment() -> dict[str, object]:
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "note": (
            "shared machine: other work may run at the same time; timings are noisy"
        ),
    }


def run(options: argparse.Namespace) -> Results:
    """Run the benchmark and return what it measured."""
    servers = Servers.from_environment()
    started = datetime.now()
    token = started.strftime("%m%d%H%M%S")
    folder = STATE / f"run-{started:%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = set(options.systems.split(","))
    systems = [system for system in SYSTEMS if system.short in chosen]
    if options.skip_old:
        systems = [system for system in systems if system.name != OLD]
    results = Results(
        started=started.isoformat(timespec="seconds"),
        options={
            "rows": options.rows,
            "old_tool_max": options.old_tool_max,
            "skip_old": options.skip_old,
            "large": options.large,
            "single": options.single,
            "repeat": options.repeat,
            "systems": [system.name for system in systems],
        },
        environment=_environment(),
    )
    runner = Runner(servers=servers, token=token, folder=folder)
    if any(system.name == OLD for system in systems):
        runner.old_python = ensure_old_venv()
    sizes = list(options.rows) + ([options.large] if options.large else [])
    sources = {rows: f"src_bench_{token}_{rows}" for rows in sizes}
    try:
        for rows, schema in sources.items():
            began = time.monotonic()
            create_source(servers, schema, rows)
            logger.info(
                "filled %s: %d rows in %.1f s", schema, rows, time.monotonic() - began
            )
        for system in systems:
            if not system.over_kafka:
                _run_system(runner, system, options, sources, results)
        over_kafka = [system for system in systems if system.over_kafka]
        if over_kafka:
            _run_over_kafka(runner, over_kafka, options, sources, results)
        if options.large:
            results.notes.append(
                f"the {options.large:,}-row run times the pull only (memory run)"
            )
        if options.large and any(s.name == OLD for s in systems):
            results.notes.append(
                f"the older tool does not pull the {options.large:,}-row table"
            )
        skipped = [rows for rows in options.rows if rows > options.old_tool_max]
        if skipped and any(s.name == OLD for s in systems):
            results.notes.append(_old_tool_note(results, max(skipped)))
    finally:
        admin = servers.source_admin()
        try:
            drop_schemas(admin, list(sources.values()))
        finally:
            admin.close()
    return results


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _old_tool_note(results: Results, rows: int) -> str:
    measured = [r for r in results.bulk if r.system == OLD and not r.error]
    largest = max(measured, key=lambda r: r.rows, default=None)
    if largest is None or not largest.pull_rate or not largest.delete_rate:
        return f"the older tool did not pull {rows:,} rows (--old-tool-max)"
    return (
        f"the older tool did not pull {rows:,} rows (--old-tool-max): at its"
        f" measured {largest.pull_rate:,.0f} rows/s that pull would take"
        f" {_duration(rows / largest.pull_rate)}, and deleting the rows at"
        f" {largest.delete_rate:,.0f} rows/s {_duration(rows / largest.delete_rate)}"
        " more"
    )


def _run_system(
    runner: Runner,
    system: System,
    options: argparse.Namespace,
    sources: dict[int, str],
    results: Results,
) -> None:
    if options.single:
        smallest = sources[min(options.rows)]
        results.single.append(runner.single(system, smallest, options.single))
    for rows in options.rows:
        if system.name == OLD and rows > options.old_tool_max:
            continue
        results.bulk.append(
            runner.bulk(system, sources[rows], rows, repeat=options.repeat)
        )
    if options.large and system.name in (RAW, RAW_RENDERED, EMBEDDED, KAFKA_1):
        # Only the pull: the large run is about memory, and the deletion path
        # `(T() & T().source.flagged)` restricts the destination by one OR term
        # per row, which the server evaluates in time growing with its square.
        results.bulk.append(
            runner.bulk(system, sources[options.large], options.large, delete=False)
        )


def _run_over_kafka(
    runner: Runner,
    systems: list[System],
    options: argparse.Namespace,
    sources: dict[int, str],
    results: Results,
) -> None:
    """Start the services once; the 2-worker run adds a second transfer worker."""
    runner.stack = ServiceStack(
        runner.servers, f"bench-{runner.token}", runner.folder / "services"
    )
    try:
        runner.stack.start_all()
        for system in systems:
            if system.name == KAFKA_2:
                runner.stack.add_transfer_worker()
            _run_system(runner, system, options, sources, results)
    except SetupError as error:
        logger.error("the Kafka runs stopped: %s", error)
        results.notes.append(f"the Kafka runs stopped: {error}")
        results.bulk.append(BulkResult(system="kafka", rows=0, error=str(error)))
    finally:
        runner.stack.stop()
        runner.stack = None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the report and keep it as JSON."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # DataJoint logs to standard output, the report's, unless told otherwise;
    # it is imported only after this, here and in every process started.
    os.environ.setdefault("DJ_LOG_STREAM", "stderr")
    warnings.filterwarnings("ignore", module="datajoint")
    options = parse_arguments(argv)
    try:
        results = run(options)
    except SetupError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    print(render(results))
    STATE.mkdir(parents=True, exist_ok=True)
    stamp = results.started.replace(":", "").replace("-", "")
    path = STATE / f"results-{stamp}.json"
    path.write_text(json.dumps(results.as_dict(), indent=2) + "\n")
    print(f"\nresults: {path.relative_to(REPOSITORY)}")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
