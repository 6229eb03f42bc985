"""Contains the benchmark's runs: each system pulls, deletes and pulls single rows.

Every run uses fresh helper and destination schemas and drops them afterwards.
Between the timed steps the counts on both servers are checked, so that a
broken run is reported as failed instead of printing good numbers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.dataset import Counts, count_link, drop_schemas, flag_all
from bench.processes import Client, ServiceStack, StepError, service_environment
from bench.results import BulkResult, SingleResult, System, merge_peaks
from bench.settings import REPOSITORY, Servers
from bench.shape import PARTS_PER_ROW, key_of

logger = logging.getLogger(__name__)


class VerificationError(StepError):
    """The servers do not hold what a step should have left."""


def expect(counts: Counts, step: str, **expected: int) -> None:
    """Raise unless the counts are as expected after a step."""
    found = counts.as_dict()
    wrong = {
        name: (found[name], value)
        for name, value in expected.items()
        if found[name] != value
    }
    if wrong:
        raise VerificationError(
            f"after {step}: "
            + ", ".join(
                f"{name} is {got}, expected {want}"
                for name, (got, want) in wrong.items()
            )
        )


@dataclass
class Runner:
    """Runs the systems against one set of source schemas."""

    servers: Servers
    token: str
    folder: Path
    old_python: Path | None = None
    stack: ServiceStack | None = None
    schemas_made: list[tuple[str, str]] = field(default_factory=list)

    def _schemas(self, system: System, label: str) -> tuple[str, str | None, str]:
        helper = f"helper_bench_{self.token}_{system.short}_{label}"
        destination = f"dst_bench_{self.token}_{system.short}_{label}"
        return helper, (helper if system.has_helper else None), destination

    def _drop(self, helper: str, destination: str) -> None:
        admin = self.servers.source_admin()
        try:
            drop_schemas(admin, [helper])
        finally:
            admin.close()
        connection = self.servers.destination()
        try:
            drop_schemas(connection, [destination])
        finally:
            connection.close()

    def _client(self, system: System, label: str) -> Client:
        log = self.folder / "logs" / f"{system.short}-{label}.log"
        if system.kind == "old":
            assert self.old_python is not None, "the older tool's venv is made first"
            environment = {
                name: value
                for name, value in os.environ.items()
                if not name.startswith(("PYTHON", "LINK_", "DJ_"))
            }
            argv = [str(self.old_python), "-I", str(REPOSITORY / "bench/old_tool.py")]
            return Client(argv, environment, log, self.folder)
        if system.over_kafka:
            assert self.stack is not None, "the services run before a Kafka client"
            environment = service_environment(
                self.servers, self.stack.prefix, self.stack.folder
            )
        else:
            environment = {
                name: value
                for name, value in os.environ.items()
                if name != "LINK_BROKER"
            }
        environment["PYTHONPATH"] = str(REPOSITORY)
        argv = [sys.executable, "-m", "bench.client", system.kind]
        return Client(argv, environment, log, REPOSITORY)

    def _peaks(self, user: int | None) -> dict[str, int | None]:
        peaks: dict[str, int | None] = {"user": user}
        if self.stack is not None:
            peaks.update(self.stack.peaks())
        return peaks

    def _reset_service_peaks(self) -> None:
        if self.stack is not None:
            self.stack.check_running()
            self.stack.reset_peaks()

    @contextmanager
    def _linked(
        self, system: System, source_schema: str, label: str
    ) -> Iterator[tuple[Client, str | None, str]]:
        helper, counted_helper, destination = self._schemas(system, label)
        self._drop(helper, destination)
        client = self._client(system, label)
        try:
            client.call(
                "link",
                servers=self.servers.__dict__,
                source_schema=source_schema,
                helper_schema=helper,
                destination_schema=destination,
            )
            yield client, counted_helper, destination
        finally:
            client.close()
            self._drop(helper, destination)

    def bulk(
        self,
        system: System,
        source_schema: str,
        rows: int,
        *,
        delete: bool = True,
        repeat: int = 1,
    ) -> BulkResult:
        """Pull a whole source table, then delete its rows, flagged, again.

        Repeated into new schemas each time; the result keeps every time.
        """
        result = BulkResult(system=system.name, rows=rows)
        try:
            for attempt in range(repeat):
                logger.info(
                    "%s: pulling %d rows (%d of %d)",
                    system.name,
                    rows,
                    attempt + 1,
                    repeat,
                )
                self._bulk_once(system, source_schema, rows, result, delete=delete)
        except StepError as error:
            result.error = str(error)
            logger.error("%s, %d rows: %s", system.name, rows, error)
        return result

    def _bulk_once(
        self,
        system: System,
        source_schema: str,
        rows: int,
        result: BulkResult,
        *,
        delete: bool,
    ) -> None:
        with self._linked(system, source_schema, str(rows)) as linked:
            client, helper, destination = linked
            self._reset_service_peaks()
            pulled = client.call("pull")
            result.pull_peak_rss = merge_peaks(
                result.pull_peak_rss, self._peaks(pulled.peak_rss)
            )
            expect(
                count_link(self.servers, helper, destination),
                "the pull",
                destination_rows=rows,
                destination_part_rows=rows * PARTS_PER_ROW,
                helper_shared=rows if helper else 0,
                helper_in_process=0,
            )
            result.pull_samples.append(pulled.seconds)
            logger.info(
                "%s: pulled %d rows in %.2f s", system.name, rows, pulled.seconds
            )
            if not delete:
                return
            if helper is not None:
                flagged = flag_all(self.servers, helper)
                if flagged != rows:
                    raise VerificationError(f"flagged {flagged} of {rows} rows")
            self._reset_service_peaks()
            deleted = client.call("delete_flagged")
            result.delete_peak_rss = merge_peaks(
                result.delete_peak_rss, self._peaks(deleted.peak_rss)
            )
            expect(
                count_link(self.servers, helper, destination),
                "the deletion",
                destination_rows=0,
                destination_part_rows=0,
                helper_deprecated=rows if helper else 0,
                helper_in_process=0,
            )
            result.delete_samples.append(deleted.seconds)
            logger.info(
                "%s: deleted %d rows in %.2f s", system.name, rows, deleted.seconds
            )

    def single(self, system: System, source_schema: str, count: int) -> SingleResult:
        """Pull rows one at a time, after one untimed warm-up pull."""
        result = SingleResult(system=system.name)
        logger.info("%s: %d single-row pulls", system.name, count)
        try:
            with self._linked(system, source_schema, "single") as linked:
                client, helper, destination = linked
                self._reset_service_peaks()
                user_peak = 0
                for index in range(count + 1):
                    group_id, row_id = key_of(index)
                    answer = client.call(
                        "pull_one", key={"group_id": group_id, "row_id": row_id}
                    )
                    user_peak = max(user_peak, answer.peak_rss or 0)
                    if index:
                        result.milliseconds.append(answer.seconds * 1000)
                result.peak_rss = self._peaks(user_peak or None)
                expect(
                    count_link(self.servers, helper, destination),
                    "the single-row pulls",
                    destination_rows=count + 1,
                    destination_part_rows=(count + 1) * PARTS_PER_ROW,
                    helper_shared=count + 1 if helper else 0,
                )
        except StepError as error:
            result.error = str(error)
            result.milliseconds = []
            logger.error("%s, single rows: %s", system.name, error)
        return result
