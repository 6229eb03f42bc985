"""Contains the measuring of a process's peak resident memory, from /proc.

Linux keeps each process's peak resident set (VmHWM) and resets it when "5"
is written to the process's clear_refs; the benchmark resets it before each
measured operation, so a peak belongs to that operation alone.
"""

from __future__ import annotations

from pathlib import Path


def peak_rss(pid: int | str = "self") -> int | None:
    """Return the peak resident memory of a process in bytes, if readable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Reset the peak resident memory of a process to its current size."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
