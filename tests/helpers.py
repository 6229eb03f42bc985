"""Contains assertions and builders shared by the integration and end-to-end tests."""

from __future__ import annotations

from typing import Any

import datajoint as dj
import numpy as np

from demo.pipeline import SourcePipeline, declare_pipeline, fill_pipeline
from link import link
from link.adapters.servers import split_host
from tests.conftest import SchemaNames
from tests.servers import Endpoints


def fetch_sorted(table: Any, restriction: Any = None) -> list[dict[str, Any]]:
    """Return a table's rows as dicts, ordered by primary key."""
    expression = table if restriction is None else table & restriction
    rows: list[dict[str, Any]] = expression.to_dicts(order_by=table.primary_key)
    return rows


def assert_rows_equal(
    expected: list[dict[str, Any]], actual: list[dict[str, Any]]
) -> None:
    """Assert two row lists are equal value by value, arrays included."""
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    for want, got in zip(expected, actual, strict=True):
        assert set(got) == set(want), f"columns {sorted(got)} != {sorted(want)}"
        for name, value in want.items():
            if isinstance(value, np.ndarray):
                assert isinstance(got[name], np.ndarray), name
                assert got[name].dtype == value.dtype, name
                assert np.array_equal(got[name], value), name
            else:
                assert got[name] == value, f"{name}: {got[name]!r} != {value!r}"


def link_user_instance(source_host: str, user: str, password: str) -> dj.Instance:
    """Return a connection to the source server as the link user."""
    host, port = split_host(source_host)
    return dj.Instance(host, user, password, port=port, safemode=False)


def filled_pipeline(
    source_admin: dj.Instance, names: SchemaNames, **sizes: int
) -> SourcePipeline:
    """Declare and fill the demo pipeline in a test's fresh source schema."""
    pipeline = declare_pipeline(source_admin, names.source)
    fill_pipeline(pipeline, **sizes)
    return pipeline


def linked_session(
    endpoints: Endpoints,
    names: SchemaNames,
    helper: str = "Outbound",
    destination_suffix: str = "",
) -> Any:
    """Link the pipeline's Session table; another suffix makes another link."""

    @link(
        endpoints.source_host,
        names.source,
        names.helper,
        helper,
        names.destination + destination_suffix,
    )
    class Session:
        """Sessions shared by the source lab."""

    return Session
