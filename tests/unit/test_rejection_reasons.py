"""The reasons the services give a publisher for a request they cannot carry out."""

from __future__ import annotations

import datajoint as dj

from link.errors import InvalidRequestError
from services.runtime import describe


def test_a_missing_table_says_the_link_is_declared_in_python_first() -> None:
    error = dj.errors.MissingTableError("Table `dst_nope`.`session` doesn't exist")

    reason = describe(error)

    assert reason.startswith("MissingTableError: Table `dst_nope`.`session`")
    assert "declared with @link(...) in Python" in reason


def test_the_links_own_errors_speak_for_themselves() -> None:
    assert describe(InvalidRequestError("No link named 'x'")) == "No link named 'x'"


def test_other_errors_are_named_by_type() -> None:
    assert describe(KeyError("subject_id")) == "KeyError: 'subject_id'"
