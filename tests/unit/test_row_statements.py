"""Joining rendered rows into INSERT statements (no server needed)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from link.adapters.literals import (
    RowRendering,
    insert_statements,
    key_literal,
    keys_in,
    literal_expression,
    plan_rendering,
    row_literals,
    unbundle,
)

TYPES = {"a": "int", "b": "longblob", "c": "geometry", "meta": "longtext"}


def test_statements_stay_under_the_limit_and_keep_every_row_in_order() -> None:
    literals = [f"({index}, 'x')" for index in range(100)]
    statements = list(insert_statements("`s`.`t`", ["a", "b"], literals, 200))
    assert len(statements) > 1
    assert all(len(statement) <= 200 for statement in statements)
    values = [
        s.removeprefix("INSERT INTO `s`.`t` (`a`, `b`) VALUES ") for s in statements
    ]
    assert ",".join(values) == ",".join(literals)


def test_a_row_longer_than_the_limit_goes_alone() -> None:
    literals = ["(1)", "(" + "9" * 500 + ")", "(3)"]
    statements = list(insert_statements("`s`.`t`", ["a"], literals, 100))
    assert [s.split("VALUES ")[1] for s in statements] == literals


def test_no_rows_make_no_statement() -> None:
    assert list(insert_statements("`s`.`t`", ["a"], [], 100)) == []


def test_stored_metadata_and_unknown_types_pass_through_python() -> None:
    rendering = plan_rendering("`s`.`t`", ["a", "b", "c", "meta"], TYPES, {"meta"})
    assert rendering.rendered == ("a", "b")
    assert rendering.passed == ("c", "meta")
    assert rendering.insert_columns == ("a", "b", "c", "meta")
    assert rendering.select_list(TYPES).endswith(", `c`, `meta`")


@pytest.mark.parametrize("data_type", ["INT", "Double", "varchar", "blob", "datetime"])
def test_known_types_render_whatever_their_case(data_type: str) -> None:
    assert literal_expression("x", data_type) is not None


def test_row_literals_put_rendered_text_first_and_escape_the_rest() -> None:
    rendering = RowRendering(table="`s`.`t`", rendered=("a",), passed=("meta",))
    rows = [("1", '{"k": 1}'), (b"2", None)]
    assert row_literals(rows, rendering, repr) == ["(1, '{\"k\": 1}')", "(2, None)"]
    only_passed = RowRendering(table="`s`.`t`", rendered=(), passed=("x", "y"))
    assert row_literals([(1, "a")], only_passed, repr) == ["(1, 'a')"]
    only_rendered = RowRendering(table="`s`.`t`", rendered=("a",), passed=())
    assert row_literals([("7, X'00'",)], only_rendered, repr) == ["(7, X'00')"]


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (7, "7"),
        (-(2**63), "-9223372036854775808"),
        (0.1, "0.1"),
        (Decimal("1.50"), "1.50"),
        ("it's", "_utf8mb4 X'69742773'"),
        ("é", "_utf8mb4 X'c3a9'"),
        (b"\x00\xff", "X'00ff'"),
        (datetime.date(2020, 2, 29), "'2020-02-29'"),
        (datetime.datetime(2020, 1, 1, 12, 30, 0, 5), "'2020-01-01 12:30:00.000005'"),
        (datetime.timedelta(hours=838, minutes=59, seconds=59), "'838:59:59.000000'"),
        (-datetime.timedelta(minutes=1, microseconds=5), "'-0:01:00.000005'"),
    ],
)
def test_key_literals(value: object, literal: str) -> None:
    assert key_literal(value) == literal


def test_keys_in_names_rows_by_a_row_constructor_list() -> None:
    assert keys_in(["a", "b"], [(1, "x"), (2, b"\x00")]) == (
        "(`a`, `b`) IN ((1, _utf8mb4 X'78'),(2, X'00'))"
    )
    assert keys_in(["a"], []) == "FALSE"


def test_a_key_value_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="bool"):
        key_literal(True)
    with pytest.raises(TypeError, match="list"):
        key_literal([1])


def test_only_a_table_rendered_whole_is_read_in_bundles() -> None:
    whole = plan_rendering("`s`.`t`", ["a", "b"], TYPES, set())
    with_passed = plan_rendering("`s`.`t`", ["a", "meta"], TYPES, {"meta"})

    bundled = whole.bundled_select_list(TYPES)

    assert bundled is not None
    assert bundled.startswith("COUNT(*), GROUP_CONCAT('(', CONCAT(")
    assert bundled.endswith(" SEPARATOR ';')")
    assert with_passed.bundled_select_list(TYPES) is None


def test_a_bundle_gives_back_each_row_constructor() -> None:
    assert unbundle(b"(1,X'00');(2,NULL)") == ["(1,X'00')", "(2,NULL)"]
    assert unbundle("(3,'2024-01-02 03:04:05')") == ["(3,'2024-01-02 03:04:05')"]
    assert unbundle(None) == []
