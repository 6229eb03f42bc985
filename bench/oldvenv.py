"""Contains the older tool's own virtual environment, made once on first use."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

from bench.settings import OLD_VENV, SetupError

logger = logging.getLogger(__name__)

REQUIREMENTS = Path(__file__).resolve().parent / "requirements-old.txt"
STAMP = ".bench-requirements"
"""File in the environment that records the requirements it was made from."""


def ensure_old_venv(folder: Path = OLD_VENV) -> Path:
    """Return the Python of the older tool's environment, making it if needed.

    The environment is made again when bench/requirements-old.txt changes.
    """
    python = folder / "bin" / "python"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = folder / STAMP
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    base = shutil.which("python3")
    if base is None:
        raise SetupError("python3 is not on PATH: it makes the older tool's venv.")
    logger.info("making the older tool's environment in %s", folder)
    try:
        if not python.exists():
            subprocess.run([base, "-m", "venv", str(folder)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
            check=True,
        )
    except subprocess.CalledProcessError as error:
        raise SetupError(f"The older tool could not be installed: {error}") from error
    stamp.write_text(wanted + "\n")
    return python
