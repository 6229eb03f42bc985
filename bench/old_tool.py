"""Contains the older tool's side of the benchmark: datajoint-link 0.11.

Run with the Python of the older tool's own virtual environment (datajoint<0.15,
pymysql<1.2), isolated (``python -I``) so that this repository's ``link``
package cannot shadow the installed one. It answers the same JSON-line
commands as ``bench/client.py`` and imports nothing from this repository.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, TextIO

CLASS_NAME = "BenchRow"
HELPER_CLASS = "BenchRowOutbound"


def peak_rss() -> int | None:
    """Return this process's peak resident memory in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak_rss() -> None:
    """Reset this process's peak resident memory to its current size."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class OldTool:
    """The older tool's link decorator, used as its README shows."""

    def __init__(self) -> None:
        """Nothing is linked before the link command."""
        self._table: Any = None

    def link(self, command: dict[str, Any]) -> dict[str, Any]:
        """Configure both servers and decorate a class named after the source."""
        servers = command["servers"]
        os.environ["LINK_USER"] = servers["link_user"]
        os.environ["LINK_PASS"] = servers["link_password"]
        dj: Any = importlib.import_module("datajoint")
        # DataJoint 0.14 reads no port variable; a "host:port" host is honoured.
        dj.config["database.host"] = (
            f"{servers['destination_host']}:{servers['destination_port']}"
        )
        dj.config["database.user"] = servers["destination_user"]
        dj.config["database.password"] = servers["destination_password"]
        # Deleting would ask for confirmation on the terminal otherwise.
        dj.config["safemode"] = False
        link: Any = importlib.import_module("link").link
        decorate = link(
            servers["source_host"],
            command["source_schema"],
            command["helper_schema"],
            HELPER_CLASS,
            command["destination_schema"],
        )
        self._table = decorate(type(CLASS_NAME, (), {"__doc__": "Benchmark rows."}))
        return {"version": dj.__version__}

    def pull(self) -> dict[str, Any]:
        """Pull the whole source table."""
        self._table().source.pull()
        return {}

    def pull_one(self, key: dict[str, Any]) -> dict[str, Any]:
        """Pull the source row with this key."""
        (self._table().source & key).pull()
        return {}

    def delete_flagged(self) -> dict[str, Any]:
        """Delete the flagged rows, as the older tool's README shows."""
        table = self._table()
        (table & table.source.flagged).delete()
        return {}


def serve(tool: OldTool, commands: TextIO, answers: TextIO) -> None:
    """Answer commands until quit or the end of the input."""
    for line in commands:
        command = json.loads(line)
        operation = command["op"]
        if operation == "quit":
            return
        reset_peak_rss()
        try:
            started = time.perf_counter()
            if operation == "link":
                detail = tool.link(command)
            elif operation == "pull":
                detail = tool.pull()
            elif operation == "pull_one":
                detail = tool.pull_one(command["key"])
            elif operation == "delete_flagged":
                detail = tool.delete_flagged()
            else:
                raise ValueError(f"unknown command {operation!r}")
            seconds = time.perf_counter() - started
            answer: dict[str, Any] = {
                "seconds": seconds,
                "peak_rss": peak_rss(),
                "detail": detail,
            }
        except Exception:
            answer = {"error": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> None:
    """Serve commands; stray output goes to standard error."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    warnings.simplefilter("ignore")
    serve(OldTool(), sys.stdin, answers)


if __name__ == "__main__":
    main()
