"""A service with a bad setting ends at once, naming the variable in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import REGISTRY, _service_environment
from tests.servers import REPOSITORY, Endpoints

pytestmark = pytest.mark.e2e

CASES = [
    # service, variable, value (None: unset), what the line must say
    ("transfer", "LINK_BATCH_SIZE", "lots", "LINK_BATCH_SIZE: Input should be"),
    ("pull_requests", "LINK_TOPIC_PREFIX", "my topics", "LINK_TOPIC_PREFIX: String"),
    ("deletion_reconciler", "LINK_REDRIVE_INTERVAL", "0", "LINK_REDRIVE_INTERVAL"),
    ("transfer", "LINK_USER", None, "LINK_USER missing or empty"),
    ("pull_requests", "LINK_BROKER", None, "LINK_BROKER is not set"),
    ("transfer", "LINK_BROKER", " ", "LINK_BROKER is not set, or empty"),
]


@pytest.mark.parametrize(("module", "variable", "value", "expected"), CASES)
def test_a_bad_setting_ends_the_service_with_one_line_naming_it(
    endpoints: Endpoints,
    tmp_path: Path,
    module: str,
    variable: str,
    value: str | None,
    expected: str,
) -> None:
    registry = tmp_path / "links.toml"
    registry.write_text(REGISTRY.format(source_host=endpoints.source_host))
    environment = _service_environment(endpoints, "test-config", registry, {})
    if value is None:
        environment.pop(variable, None)
    else:
        environment[variable] = value

    finished = subprocess.run(
        [sys.executable, "-m", f"services.{module}"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    program = "link-" + module.replace("_", "-")
    assert finished.returncode == 2, finished.stderr
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith(f"{program}: configuration error: ")
    assert expected in lines[0]


def test_a_bad_datajoint_variable_ends_a_service_with_one_line_naming_it(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    registry = tmp_path / "links.toml"
    registry.write_text(REGISTRY.format(source_host=endpoints.source_host))
    environment = _service_environment(endpoints, "test-config", registry, {})
    environment["DJ_PORT"] = "abc"

    finished = subprocess.run(
        [sys.executable, "-m", "services.transfer"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert finished.returncode == 2, finished.stderr
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert "configuration error: Invalid DataJoint settings: DJ_PORT:" in lines[0]
