"""The README's tour runs as written, in embedded mode and over Kafka.

Its shell block (dropping the tour's schemas) runs too, and no example anywhere
in the README names the local stack's default ports instead of the variables
that `make env` exports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import datajoint as dj
import pytest

from link import AlreadySharedWarning
from tests.servers import REPOSITORY, Endpoints

pytestmark = pytest.mark.e2e

SCHEMAS = ("src_tour", "helper_tour", "dst_tour")


DEFAULT_PORTS = re.compile(r"\b(3316|3317|9092|9093)\b")
"""The local stack's default ports, which `make up` may have been told to change."""

ENV_LINE = 'eval "$(make -s env)"\n'


def tour_blocks(language: str = "python") -> list[str]:
    """Return the blocks of the README's tour in one language, in order."""
    text = (REPOSITORY / "README.md").read_text()
    tour = text.split("## A tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", tour, flags=re.DOTALL)


def test_no_example_hard_codes_a_port_of_the_local_stack() -> None:
    text = (REPOSITORY / "README.md").read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", prose)
    assert len(blocks) >= 10, "the README lost its examples"
    assert len(inline) >= 100, "the README lost its examples"

    offending = [code for code in blocks + inline if DEFAULT_PORTS.search(code)]

    assert offending == []


def run_shell_blocks(endpoints: Endpoints) -> None:
    """Run the tour's shell blocks with the test servers' variables."""
    assert shutil.which("mariadb"), "the mariadb client is missing (mariadb-client)"
    blocks = tour_blocks("sh")
    assert blocks, "the tour lost its shell block"
    assert all(block.startswith(ENV_LINE) for block in blocks)
    environment = {
        "PATH": "/usr/bin:/bin",
        "LINK_SOURCE_HOST": endpoints.source_host,
        "LINK_SOURCE_ADMIN_USER": endpoints.source_admin_user,
        "LINK_SOURCE_ADMIN_PASS": endpoints.source_admin_password,
        "DJ_HOST": endpoints.destination_host,
        "DJ_PORT": str(endpoints.destination_port),
        "DJ_USER": endpoints.destination_user,
        "DJ_PASS": endpoints.destination_password,
    }
    for block in blocks:
        # The variables stand in for `make env`, which knows the local stack only.
        subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.removeprefix(ENV_LINE)],
            env=environment,
            check=True,
            timeout=60,
        )


@pytest.fixture
def clean_tour_schemas(
    source_admin: dj.Instance, destination_admin: dj.Instance
) -> Iterator[None]:
    """Drop the tour's schemas before and after."""

    def drop() -> None:
        for schema in ("helper_tour", "src_tour"):
            source_admin.connection.query(f"DROP DATABASE IF EXISTS `{schema}`")
        destination_admin.connection.query("DROP DATABASE IF EXISTS `dst_tour`")

    drop()
    yield
    drop()


def run_python_blocks(blocks: list[str]) -> None:
    """Run Python blocks one after the other, in one namespace."""
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


@pytest.mark.usefixtures("clean_tour_schemas", "link_environment")
@pytest.mark.parametrize("mode", ["embedded", "kafka"])
def test_the_readme_tour_runs_as_written(
    mode: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    endpoints: Endpoints,
    source_admin: dj.Instance,
    destination_admin: dj.Instance,
) -> None:
    if mode == "kafka":
        services = request.getfixturevalue("services")
        monkeypatch.setenv("LINK_TOPIC_PREFIX", services.topic_prefix)
    else:
        monkeypatch.delenv("LINK_BROKER")
    blocks = tour_blocks()
    assert len(blocks) >= 5, "the tour lost its examples"

    # The tour's handle.wait() meets rows that `again` shared, and says so.
    with pytest.warns(AlreadySharedWarning):
        run_python_blocks(blocks)
    run_shell_blocks(endpoints)  # and the tour can start over

    left = [
        *source_admin.connection.query(
            "SHOW DATABASES WHERE `Database` IN ('src_tour', 'helper_tour')"
        ).fetchall(),
        *destination_admin.connection.query("SHOW DATABASES LIKE 'dst_tour'"),
    ]
    assert left == []
