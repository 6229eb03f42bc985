"""The services' fix of faust's rebalance race, against the broker.

services/recovery.py explains the race. tests/slow_seek_app.py is a faust
worker whose seek after a rebalance is slow enough to meet it every time.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from link.adapters.kafka import ensure_topics
from tests.servers import REPOSITORY, Endpoints
from tests.slow_seek_app import TABLE

pytestmark = pytest.mark.integration

SLOW_SEEK_SECONDS = 3.0


class Worker:
    """Runs tests/slow_seek_app.py on a topic of its own and reads what it handled."""

    def __init__(self, broker: str, folder: Path) -> None:
        """Name a new app and topic; nothing runs yet."""
        name = f"slow-seek-{secrets.token_hex(4)}"
        self.broker = broker
        self.topic = name
        self.handled = folder / "handled.txt"
        self.log = folder / "worker.log"
        self.environment = {
            **os.environ,
            "BROKER": broker,
            "APP_ID": name,
            "TOPIC": name,
            "HANDLED": str(self.handled),
            "PYTHONUNBUFFERED": "1",
        }
        self.changelog = f"{name}-{TABLE}-changelog"
        # faust would create its changelog itself, too late for its first write.
        ensure_topics(broker, [name], 1, compacted=[self.changelog])
        self.producer = Producer({"bootstrap.servers": broker})

    def publish(self, count: int) -> None:
        """Publish messages to the worker's topic."""
        for _ in range(count):
            self.producer.produce(self.topic, key=b"key", value=b"value")
        assert self.producer.flush(10) == 0

    def offsets(self) -> set[int]:
        """Return the offsets the worker has handled so far, in any of its runs."""
        if not self.handled.exists():
            return set()
        return {int(line) for line in self.handled.read_text().split()}

    def run_until(self, wanted: set[int], timeout: float, **settings: str) -> None:
        """Run the worker until it handled wanted offsets or time is up; stop it."""
        with self.log.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.slow_seek_app"],
                cwd=REPOSITORY,
                env={**self.environment, **settings},
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + timeout
            while not wanted <= self.offsets() and time.monotonic() < deadline:
                if process.poll() is not None:
                    pytest.fail(f"the worker ended:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def delete_topics(self) -> None:
        """Delete the worker's topics."""
        admin = AdminClient({"bootstrap.servers": self.broker})
        for future in admin.delete_topics([self.topic, self.changelog]).values():
            future.result()


@pytest.fixture
def worker(endpoints: Endpoints, tmp_path: Path) -> Iterator[Worker]:
    """Return a worker on a new topic; its topics are deleted afterwards."""
    made = Worker(endpoints.broker, tmp_path)
    yield made
    made.delete_topics()


def test_no_message_is_lost_when_the_seek_after_a_rebalance_is_slow(
    worker: Worker,
) -> None:
    # A first run commits offsets and leaves entries in the table's changelog,
    # so that the second run recovers the table, with its fetcher running.
    worker.publish(5)
    worker.run_until(set(range(5)), timeout=60)
    assert worker.offsets() == set(range(5))

    worker.publish(15)
    worker.run_until(
        set(range(20)), timeout=60, SLOW_SEEK=str(SLOW_SEEK_SECONDS), FIXED="1"
    )

    missing = set(range(20)) - worker.offsets()
    assert not missing, (
        f"offsets {sorted(missing)} were never handled:\n"
        + worker.log.read_text()[-3000:]
    )
