"""A faust worker that meets the rebalance race of services/recovery.py every time.

tests/integration/test_faust_recovery.py runs it as a process. It handles the
messages of one topic slowly, keeps the last offset per key in a table (so that
a restart recovers the table from its changelog) and writes each offset it
handled to a file. When SLOW_SEEK is set, seeking to the committed offsets after a
rebalance returns only SLOW_SEEK seconds after the seek. In faust's own order
the stream partitions fetch from the moment before the seek until faust empties
its buffers after it; between the seek and the emptying, a few turns of the
event loop deliver messages that are then thrown away. The wait widens that
window so that the loss happens on every run instead of now and then.

Environment: BROKER, APP_ID, TOPIC, HANDLED (the file), SLOW_SEEK (seconds),
FIXED ("1": with the services' fix).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types import StreamT

TABLE = "last-offsets"
"""The table's name; its changelog topic is named "{APP_ID}-last-offsets-changelog"."""

HANDLING_SECONDS = 0.5
"""How long handling one message takes: later messages wait in faust's buffers."""


def slow_down_seeking(seconds: float) -> None:
    """Make every seek to committed offsets return seconds late."""
    seek = Consumer.perform_seek

    async def slow_seek(self: Consumer) -> None:
        await seek(self)
        await asyncio.sleep(seconds)

    Consumer.perform_seek = slow_seek  # type: ignore[method-assign]


def main() -> None:
    """Run the worker until it is stopped."""
    if os.environ.get("FIXED") == "1":
        from services.recovery import keep_messages_through_rebalances

        keep_messages_through_rebalances()
    slow_seek = float(os.environ.get("SLOW_SEEK", "0"))
    if slow_seek:
        slow_down_seeking(slow_seek)
    handled = Path(os.environ["HANDLED"])
    app = faust.App(
        os.environ["APP_ID"],
        broker=f"kafka://{os.environ['BROKER']}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        topic_partitions=1,
        consumer_auto_offset_reset="earliest",
        datadir=str(Path(tempfile.gettempdir()) / "datajoint-link-faust-test"),
    )
    topic = app.topic(os.environ["TOPIC"], key_type=bytes, value_type=bytes)
    # faust keeps tables as JSON, whatever the app's serializer.
    last_offsets: Any = app.Table(TABLE, default=None, partitions=1)

    @app.agent(topic)
    async def handle(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await asyncio.sleep(HANDLING_SECONDS)
            last_offsets[(event.key or b"").decode()] = event.message.offset
            with handled.open("a") as output:
                output.write(f"{event.message.offset}\n")

    _ = handle
    sys.argv = [sys.argv[0], "worker", "--without-web", "--loglevel", "info"]
    app.main()


if __name__ == "__main__":
    main()
