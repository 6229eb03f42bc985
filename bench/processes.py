"""Contains the processes the benchmark starts: system clients and link services.

A client process is one system's user (``bench/client.py`` or the older tool's
``bench/old_tool.py``), driven by JSON lines. The link services run as in
tests/e2e: one process each, with a topic prefix of their own, so that no other
run's messages reach them; each also gets a working folder of its own, where
faust keeps its data folder.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from bench.memory import peak_rss, reset_peak_rss
from bench.settings import REPOSITORY, Servers, SetupError

logger = logging.getLogger(__name__)

READY_MARK = "[^Worker]: Ready"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0

SERVICE_MODULES = {
    "pull-requests": "services.pull_requests",
    "transfer": "services.transfer",
    "deletion-reconciler": "services.deletion_reconciler",
}


class StepError(Exception):
    """A benchmarked operation failed; the message carries its traceback or log."""


def log_tail(path: Path, lines: int = 30) -> str:
    """Return the last lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Answer:
    """A client's answer to one command."""

    seconds: float
    peak_rss: int | None
    detail: dict[str, Any]


class Client:
    """A running system client and the pipe that drives it."""

    def __init__(
        self, argv: list[str], environment: dict[str, str], log: Path, cwd: Path
    ) -> None:
        """Start the client process; its output goes to the log."""
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=environment,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=output,
                text=True,
            )

    @property
    def pid(self) -> int:
        """Return the process id."""
        return self._process.pid

    def call(self, operation: str, **fields: Any) -> Answer:
        """Send one command and wait for its answer."""
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(json.dumps({"op": operation, **fields}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise StepError(
                f"the client process ended during {operation}:\n{log_tail(self.log)}"
            )
        answer = json.loads(line)
        if "error" in answer:
            raise StepError(f"{operation} failed:\n{answer['error']}")
        return Answer(
            seconds=answer["seconds"],
            peak_rss=answer["peak_rss"],
            detail=answer["detail"],
        )

    def close(self) -> None:
        """Ask the client to quit; kill it if it does not."""
        if self._process.poll() is None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self._process.stdin.close()
                self._process.wait(timeout=STOP_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


REGISTRY = """# Written by python -m bench: the links its services accept.
[[link]]
name = "bench"
source_host = "{source_host}"
source_schema = "src_bench_*"
helper_schema = "helper_bench_*"
destination_schema = "dst_bench_*"
"""


def write_registry(servers: Servers, folder: Path) -> Path:
    """Write the services' registry of accepted links: the benchmark's schemas."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "links.toml"
    path.write_text(REGISTRY.format(source_host=servers.source_host))
    return path


def service_environment(servers: Servers, prefix: str, folder: Path) -> dict[str, str]:
    """Return the environment of a link service (or of a client over Kafka)."""
    if servers.broker is None:
        raise SetupError("LINK_BROKER is not set: the Kafka runs need the broker.")
    environment = {
        **os.environ,
        "LINK_BROKER": servers.broker,
        "LINK_TOPIC_PREFIX": prefix,
        # Services that predate the registry file read the allowed source
        # servers from LINK_SOURCE_HOSTS; newer ones read LINK_REGISTRY.
        "LINK_SOURCE_HOSTS": servers.source_host,
        "LINK_REGISTRY": str(write_registry(servers, folder)),
        # The reconciler re-drives stuck rows of every link recorded on the
        # destination server, other people's included; the benchmark leaves
        # that to their own services.
        "LINK_REDRIVE_INTERVAL": "3600",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPOSITORY),
    }
    return environment


def delete_topics(broker: str, prefix: str) -> None:
    """Delete the topics of one run: the link's and those faust made for itself."""
    admin = AdminClient({"bootstrap.servers": broker})
    try:
        names = [
            name
            for name in admin.list_topics(timeout=15).topics
            if name.startswith((f"{prefix}.", f"{prefix}-"))
        ]
        if names:
            for future in admin.delete_topics(names).values():
                future.result()
    except KafkaException as error:
        logger.warning("the topics of %s were not deleted: %s", prefix, error)


@dataclass
class ServiceStack:
    """The link services of one benchmark run, each a process of its own."""

    servers: Servers
    prefix: str
    folder: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, module: str) -> None:
        """Start one service and wait until its faust worker is ready."""
        workdir = self.folder / name
        workdir.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=workdir,
                env=service_environment(self.servers, self.prefix, self.folder),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.processes[name] = process
        deadline = time.monotonic() + START_TIMEOUT
        while READY_MARK not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f"service {name} did not start:\n{log_tail(log)}")
            time.sleep(0.2)
        logger.info("service %s ready, pid %d", name, process.pid)

    def start_all(self) -> None:
        """Start the pull-request service, one transfer worker, the reconciler."""
        self.start("pull-requests", SERVICE_MODULES["pull-requests"])
        self.start("transfer-1", SERVICE_MODULES["transfer"])
        self.start("deletion-reconciler", SERVICE_MODULES["deletion-reconciler"])

    def add_transfer_worker(self) -> str:
        """Start one more transfer worker; return its name."""
        count = sum(name.startswith("transfer-") for name in self.processes)
        name = f"transfer-{count + 1}"
        self.start(name, SERVICE_MODULES["transfer"])
        return name

    def check_running(self) -> None:
        """Raise if a service has stopped."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StepError(
                    f"service {name} stopped:\n{log_tail(self.folder / f'{name}.log')}"
                )

    def reset_peaks(self) -> None:
        """Reset every service's peak resident memory to its current size."""
        for process in self.processes.values():
            reset_peak_rss(process.pid)

    def peaks(self) -> dict[str, int | None]:
        """Return every service's peak resident memory since the last reset."""
        return {name: peak_rss(p.pid) for name, p in self.processes.items()}

    def stop(self) -> None:
        """Stop every service, then delete the run's topics."""
        self.stop_processes()
        if self.servers.broker is not None:
            delete_topics(self.servers.broker, self.prefix)

    def stop_processes(self) -> None:
        """Stop every service, killing those that do not stop in time."""
        for name, process in list(self.processes.items()):
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                logger.warning("service %s did not stop in time; killed", name)
                process.kill()
                process.wait()
            del self.processes[name]
