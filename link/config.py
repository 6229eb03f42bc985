"""Contains the link's settings, read from the environment.

Precedence, highest first: arguments given in code, environment variables,
defaults. The destination server is not configured here: it is DataJoint's own
configuration (``DJ_HOST``, ``DJ_PORT``, ``DJ_USER``, ``DJ_PASS`` or
``datajoint.json``), so that the destination table lives where the rest of the
user's pipeline does.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from link.errors import ConfigurationError


class LinkSettings(BaseSettings):
    """Settings shared by the library and the services."""

    model_config = SettingsConfigDict(env_prefix="LINK_", extra="ignore")

    broker: str | None = Field(
        default=None,
        description="Kafka bootstrap servers, host:port[,host:port] (LINK_BROKER).",
    )

    user: str | None = Field(
        default=None, description="User name on the source server (LINK_USER)."
    )
    password: SecretStr | None = Field(
        default=None,
        validation_alias="LINK_PASS",
        description="Password on the source server (LINK_PASS).",
    )
    topic_prefix: str = Field(
        default="link",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="First part of every topic name (LINK_TOPIC_PREFIX).",
    )
    topic_partitions: int = Field(
        default=6,
        ge=1,
        description=(
            "Partitions of each topic the link creates (LINK_TOPIC_PARTITIONS);"
            " the most transfer workers that can share one pull."
        ),
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Rows per transfer batch (LINK_BATCH_SIZE).",
    )
    request_size: int = Field(
        default=5_000,
        ge=1,
        le=10_000,
        description="Keys per published pull request (LINK_REQUEST_SIZE).",
    )
    pull_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds .pull() waits for completions (LINK_PULL_TIMEOUT).",
    )
    transfer_concurrency: int = Field(
        default=2,
        ge=1,
        le=8,
        description=(
            "Batches one transfer worker handles at once, each on its own"
            " database connections (LINK_TRANSFER_CONCURRENCY)."
        ),
    )
    redrive_interval: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds between the deletion reconciler's scans for rows left"
            " mid-way (LINK_REDRIVE_INTERVAL); stuck rows are re-driven after"
            " two scans."
        ),
    )
    session_timeout: float = Field(
        default=10.0,
        ge=6.0,
        le=300.0,
        description=(
            "Seconds without a heartbeat after which Kafka takes a service worker"
            " for dead and hands its partitions to the others"
            " (LINK_SESSION_TIMEOUT); the broker's group.min.session.timeout.ms"
            " (6 s by default) bounds it from below."
        ),
    )
    outcome_retention: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description=(
            "Seconds the pull-request service keeps a completed request's outcome"
            " to answer its id again (LINK_OUTCOME_RETENTION); afterwards a"
            " request under that id is carried out anew."
        ),
    )
    registry: Path | None = Field(
        default=None,
        description=(
            "The services' TOML file of accepted links (LINK_REGISTRY); requests"
            " for any other link are rejected. See link/registry.py."
        ),
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description=(
            "Largest request the services read, and the library writes"
            " (LINK_MAX_REQUEST_BYTES)."
        ),
    )

    @field_validator("broker")
    @classmethod
    def _blank_broker_is_unset(cls, broker: str | None) -> str | None:
        """Read an empty LINK_BROKER as unset: embedded mode, as the README says."""
        if broker is None or not broker.strip():
            return None
        return broker.strip()

    def source_credentials(self) -> tuple[str, str]:
        """Return the source user and password, or say which variable is missing."""
        missing = [
            name
            for name, value in (("LINK_USER", self.user), ("LINK_PASS", self.password))
            if value is None or (name == "LINK_USER" and not str(value).strip())
        ]
        if missing:
            raise ConfigurationError(
                "The source server's credentials are not set: "
                + ", ".join(missing)
                + " missing or empty in the environment."
            )
        assert self.user is not None
        assert self.password is not None
        return self.user, self.password.get_secret_value()


def variable_name(field: str) -> str:
    """Return the environment variable that sets a field of LinkSettings."""
    alias = LinkSettings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"LINK_{field.upper()}"


def load_settings() -> LinkSettings:
    """Read the link's settings from the environment, naming any bad variable.

    The values themselves are not repeated: one of them may be a password.
    """
    try:
        return LinkSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"{_variable_of(issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise ConfigurationError(f"Invalid link settings: {problems}") from None


def _variable_of(location: tuple[int | str, ...]) -> str:
    name = str(location[0]) if location else ""
    if name in LinkSettings.model_fields:
        return variable_name(name)
    return name or "link settings"
