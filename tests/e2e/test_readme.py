"""The README's tour runs as written, in embedded mode and over Kafka."""

from __future__ import annotations

import re
from collections.abc import Iterator

import datajoint as dj
import pytest

from tests.servers import REPOSITORY

pytestmark = pytest.mark.e2e

SCHEMAS = ("src_tour", "helper_tour", "dst_tour")


def tour_blocks() -> list[str]:
    """Return the Python blocks of the README's tour, in order."""
    text = (REPOSITORY / "README.md").read_text()
    tour = text.split("## A tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", tour, flags=re.DOTALL)


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


@pytest.mark.usefixtures("clean_tour_schemas", "link_environment")
@pytest.mark.parametrize("mode", ["embedded", "kafka"])
def test_the_readme_tour_runs_as_written(
    mode: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode == "kafka":
        services = request.getfixturevalue("services")
        monkeypatch.setenv("LINK_TOPIC_PREFIX", services.topic_prefix)
    else:
        monkeypatch.delenv("LINK_BROKER")
    blocks = tour_blocks()
    assert len(blocks) >= 5, "the tour lost its examples"
    namespace: dict[str, object] = {}

    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
