"""The older tool's documented scenario, with stored objects, in both modes.

A table with two part tables whose attributes live in an external store, with
attachments among them, is linked with its store remapped; a restricted subset
is pulled; the source flags a row and deleting it downstream marks it
deprecated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datajoint as dj
import pytest

from link import link
from link.adapters.servers import split_host
from tests.conftest import SchemaNames
from tests.e2e.conftest import DESTINATION_STORE, SOURCE_STORE
from tests.servers import Endpoints
from tests.stores import declare_source, decoded, fill_source

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["embedded", "kafka"])
def mode(
    request: pytest.FixtureRequest,
    link_environment: None,
    store_specs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """Carry requests out in-process or through the services over Kafka."""
    for name, spec in store_specs.items():
        monkeypatch.setitem(dj.config.stores, name, spec)
    if request.param == "kafka":
        services = request.getfixturevalue("services")
        monkeypatch.setenv("LINK_TOPIC_PREFIX", services.topic_prefix)
        monkeypatch.setenv("LINK_PULL_TIMEOUT", "60")
    else:
        monkeypatch.delenv("LINK_BROKER")
    return str(request.param)


@pytest.mark.usefixtures("mode")
def test_a_restricted_pull_with_remapped_stores_then_a_flagged_deletion(
    endpoints: Endpoints,
    schema_names: SchemaNames,
    store_specs: dict[str, Any],
    tmp_path: Path,
) -> None:
    host, port = split_host(endpoints.source_host)
    source_lab = dj.Instance(
        host,
        endpoints.source_admin_user,
        endpoints.source_admin_password,
        port=port,
        stores=store_specs,
        safemode=False,
    )
    pipeline = declare_source(source_lab, schema_names.source, SOURCE_STORE)
    fill_source(pipeline, source_lab, SOURCE_STORE, tmp_path / "files", sessions=3)

    @link(
        endpoints.source_host,
        schema_names.source,
        schema_names.helper,
        "SessionOutbound",
        schema_names.destination,
        stores={SOURCE_STORE: DESTINATION_STORE},
    )
    class Session:
        pass

    table: Any = Session
    result = (table().source & "session_id in (1, 2)").pull()

    assert result.counts.shared == 2
    destination = table._link_context.destination
    for source_table, destination_table in (
        ("session", "session"),
        ("session__trial", "session__trial"),
        ("session__stimulus", "session__stimulus"),
    ):
        sent = decoded(
            source_lab,
            f"`{schema_names.source}`.`{source_table}`",
            tmp_path / "sent" / source_table,
        )
        arrived = decoded(
            destination,
            f"`{schema_names.destination}`.`{destination_table}`",
            tmp_path / "arrived" / destination_table,
        )
        assert arrived == [row for row in sent if row["session_id"] in (1, 2)]
    stored = table.Trial().heading.attributes["trace"]
    assert stored.store == DESTINATION_STORE

    helper = f"`{schema_names.helper}`.`session_outbound`"
    source_lab.connection.query(
        f"UPDATE {helper} SET is_flagged = 'TRUE' WHERE session_id = 2"
    )
    (table() & table().source.flagged).delete()

    remaining = table().keys()
    assert [key["session_id"] for key in remaining] == [1]
    row = source_lab.connection.query(
        f"SELECT is_deprecated FROM {helper} WHERE session_id = 2"
    ).fetchone()
    assert row == ("TRUE",)
