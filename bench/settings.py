"""Contains where the benchmark finds its servers: the variables of infra/env.sh."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

REPOSITORY = Path(__file__).resolve().parent.parent
Connection = Any
"""A PyMySQL connection (PyMySQL ships no type information)."""

STATE = REPOSITORY / ".local" / "bench"
OLD_VENV = REPOSITORY / ".cache" / "bench-old-venv"

_REQUIRED = (
    "LINK_SOURCE_HOST",
    "LINK_SOURCE_ADMIN_USER",
    "LINK_SOURCE_ADMIN_PASS",
    "LINK_USER",
    "LINK_PASS",
    "DJ_HOST",
    "DJ_USER",
    "DJ_PASS",
)


class SetupError(Exception):
    """The benchmark cannot run as configured; the message says why."""


def split_address(address: str, default_port: int = 3306) -> tuple[str, int]:
    """Split "host:port" into its parts."""
    host, _, port = address.partition(":")
    return host, int(port) if port else default_port


@dataclass(frozen=True)
class Servers:
    """The two database servers, their accounts, and the broker."""

    source_host: str
    source_admin_user: str
    source_admin_password: str
    link_user: str
    link_password: str
    destination_host: str
    destination_port: int
    destination_user: str
    destination_password: str
    broker: str | None

    @classmethod
    def from_environment(cls) -> Servers:
        """Read the servers from the variables that infra/env.sh exports."""
        missing = [name for name in _REQUIRED if not os.environ.get(name)]
        if missing:
            raise SetupError(
                "The servers are not configured: "
                + ", ".join(missing)
                + ' missing (run through make bench, or eval "$(make -s env)").'
            )
        env = os.environ
        return cls(
            source_host=env["LINK_SOURCE_HOST"],
            source_admin_user=env["LINK_SOURCE_ADMIN_USER"],
            source_admin_password=env["LINK_SOURCE_ADMIN_PASS"],
            link_user=env["LINK_USER"],
            link_password=env["LINK_PASS"],
            destination_host=env["DJ_HOST"],
            destination_port=int(env.get("DJ_PORT", "3306")),
            destination_user=env["DJ_USER"],
            destination_password=env["DJ_PASS"],
            broker=env.get("LINK_BROKER") or None,
        )

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Servers:
        """Rebuild the servers from their JSON form (a job's specification)."""
        return cls(**document)

    def source_admin(self) -> Connection:
        """Connect to the source server as the source lab's operator."""
        host, port = split_address(self.source_host)
        return pymysql.connect(
            host=host,
            port=port,
            user=self.source_admin_user,
            password=self.source_admin_password,
            autocommit=True,
        )

    def source_link(self) -> Connection:
        """Connect to the source server as the link's restricted user."""
        host, port = split_address(self.source_host)
        return pymysql.connect(
            host=host,
            port=port,
            user=self.link_user,
            password=self.link_password,
            autocommit=True,
        )

    def destination(self) -> Connection:
        """Connect to the destination server."""
        return pymysql.connect(
            host=self.destination_host,
            port=self.destination_port,
            user=self.destination_user,
            password=self.destination_password,
            autocommit=True,
        )
