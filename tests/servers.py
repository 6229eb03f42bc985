"""Contains where the tests find their servers: the environment, or containers.

The local stack (``make up``) is what runs here and in CI. testcontainers is the
fallback for machines that have a Docker engine and no servers configured; it
starts the images that ``compose.yaml`` uses, with the same accounts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

_REQUIRED = (
    "LINK_SOURCE_HOST",
    "LINK_SOURCE_ADMIN_USER",
    "LINK_SOURCE_ADMIN_PASS",
    "LINK_USER",
    "LINK_PASS",
    "DJ_HOST",
    "DJ_USER",
    "DJ_PASS",
    "LINK_BROKER",
)


@dataclass(frozen=True)
class Endpoints:
    """The servers and accounts that the tests use."""

    source_host: str
    source_admin_user: str
    source_admin_password: str
    link_user: str
    link_password: str
    destination_host: str
    destination_port: int
    destination_user: str
    destination_password: str
    broker: str

    def export(self) -> None:
        """Set the environment variables that the library and services read."""
        os.environ.update(
            LINK_SOURCE_HOST=self.source_host,
            LINK_SOURCE_ADMIN_USER=self.source_admin_user,
            LINK_SOURCE_ADMIN_PASS=self.source_admin_password,
            LINK_USER=self.link_user,
            LINK_PASS=self.link_password,
            DJ_HOST=self.destination_host,
            DJ_PORT=str(self.destination_port),
            DJ_USER=self.destination_user,
            DJ_PASS=self.destination_password,
            LINK_BROKER=self.broker,
        )


def endpoints_from_environment() -> Endpoints | None:
    """Return the servers named by the environment, or None if none are named."""
    present = [name for name in _REQUIRED if os.environ.get(name)]
    if not present:
        return None
    missing = [name for name in _REQUIRED if not os.environ.get(name)]
    if missing:
        raise RuntimeError(
            "The test servers are only partly configured: set "
            + ", ".join(missing)
            + ' (eval "$(make -s env)" sets them all for the local servers).'
        )
    env = os.environ
    return Endpoints(
        source_host=env["LINK_SOURCE_HOST"],
        source_admin_user=env["LINK_SOURCE_ADMIN_USER"],
        source_admin_password=env["LINK_SOURCE_ADMIN_PASS"],
        link_user=env["LINK_USER"],
        link_password=env["LINK_PASS"],
        destination_host=env["DJ_HOST"],
        destination_port=int(env.get("DJ_PORT", "3306")),
        destination_user=env["DJ_USER"],
        destination_password=env["DJ_PASS"],
        broker=env["LINK_BROKER"],
    )


def docker_available() -> bool:
    """Return whether a Docker engine answers."""
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:  # any failure means there is no usable engine
        return False
    return True


@contextmanager
def start_containers() -> Iterator[Endpoints]:
    """Start Kafka and the two MariaDB servers in containers, then stop them."""
    if os.environ.get("CI") or not docker_available():
        raise RuntimeError(
            "No test servers: the environment names none and no Docker engine"
            " answers. Run `make test` (it starts the local servers) or export"
            " what `make env` prints."
        )
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mysql import MySqlContainer

    sql = REPOSITORY / "infra" / "sql"
    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.0"))
        source = stack.enter_context(
            MySqlContainer(
                "mariadb:10.11", username="root", password="root"
            ).with_volume_mapping(
                str(sql / "source-init.sql"), "/docker-entrypoint-initdb.d/init.sql"
            )
        )
        destination = stack.enter_context(
            MySqlContainer(
                "mariadb:10.11", username="root", password="root"
            ).with_volume_mapping(
                str(sql / "destination-init.sql"),
                "/docker-entrypoint-initdb.d/init.sql",
            )
        )
        yield Endpoints(
            source_host=(
                f"{source.get_container_host_ip()}:{source.get_exposed_port(3306)}"
            ),
            source_admin_user="source_admin",
            source_admin_password="source_admin_pw",
            link_user="djlink",
            link_password="djlink_pw",
            destination_host=destination.get_container_host_ip(),
            destination_port=int(destination.get_exposed_port(3306)),
            destination_user="djuser",
            destination_password="djuser_pw",
            broker=kafka.get_bootstrap_server(),
        )
