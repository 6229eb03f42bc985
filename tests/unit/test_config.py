"""Reading the library's settings from the environment (no servers)."""

from __future__ import annotations

import pytest

from link.config import LinkSettings, load_settings
from link.errors import ConfigurationError


@pytest.mark.parametrize("user", [None, "", "  "])
def test_a_missing_or_empty_source_user_is_named(
    monkeypatch: pytest.MonkeyPatch, user: str | None
) -> None:
    monkeypatch.setenv("LINK_PASS", "secret")
    if user is None:
        monkeypatch.delenv("LINK_USER", raising=False)
    else:
        monkeypatch.setenv("LINK_USER", user)

    with pytest.raises(ConfigurationError, match="LINK_USER missing or empty"):
        LinkSettings().source_credentials()


def test_the_source_credentials_are_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINK_USER", "djlink")
    monkeypatch.setenv("LINK_PASS", "secret")

    assert LinkSettings().source_credentials() == ("djlink", "secret")


def test_a_bad_value_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LINK_BATCH_SIZE", "0")
    monkeypatch.setenv("LINK_PULL_TIMEOUT", "soon")

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    assert "LINK_BATCH_SIZE: Input should be greater than or equal to 1" in str(
        raised.value
    )
    assert "LINK_PULL_TIMEOUT: Input should be a valid number" in str(raised.value)
