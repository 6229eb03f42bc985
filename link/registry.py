"""Contains the registry of links that the services' operators accept.

The services carry out requests only for links that their operators listed in
a TOML file (LINK_REGISTRY). A request names its link either in full (what the
``link`` decorator sends) or by the name of a registry entry (what other
systems may prefer). Either way the request is checked against the registry
before any connection is opened, and the source server is reached at the
address the registry gives, never at one a message supplies.

An entry's schema and table fields may be shell-style patterns (``dst_*``), so
that operators can accept a family of links; only an entry without patterns
can be named in a request.

Example::

    [[link]]
    name = "sessions-to-lab-b"
    source_host = "db.lab-a.org:3306"      # as users name it in @link(...)
    source_address = "10.1.2.3:3306"       # optional: where the services reach it
    source_schema = "lab_a"
    source_table = "session"
    helper_schema = "lab_a_link"
    helper_table = "session_outbound"
    destination_schema = "lab_b"
    destination_table = "session"
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from link.domain.events import LinkRef
from link.errors import ConfigurationError, InvalidRequestError

_PATTERN_CHARACTERS = set("*?[")


class RegisteredLink(BaseModel):
    """One entry of the registry: a link, or a family of links by pattern."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    source_host: str
    source_address: str | None = None
    source_schema: str
    source_table: str = "*"
    helper_schema: str
    helper_table: str = "*"
    destination_schema: str
    destination_table: str = "*"

    @property
    def address(self) -> str:
        """Return where the services reach the source server."""
        return self.source_address or self.source_host

    def matches(self, ref: LinkRef) -> bool:
        """Return whether a requested link is one this entry accepts."""
        pairs = (
            (self.source_schema, ref.source_schema),
            (self.source_table, ref.source_table),
            (self.helper_schema, ref.helper_schema),
            (self.helper_table, ref.helper_table),
            (self.destination_schema, ref.destination_schema),
            (self.destination_table, ref.destination_table),
        )
        return self.source_host == ref.source_host and all(
            fnmatch.fnmatchcase(value, pattern) for pattern, value in pairs
        )

    def as_ref(self) -> LinkRef | None:
        """Return the link this entry names, or None when it holds patterns."""
        fields = (
            self.source_schema,
            self.source_table,
            self.helper_schema,
            self.helper_table,
            self.destination_schema,
            self.destination_table,
        )
        if any(_PATTERN_CHARACTERS & set(value) for value in fields):
            return None
        return LinkRef(
            source_host=self.source_host,
            source_schema=self.source_schema,
            source_table=self.source_table,
            helper_schema=self.helper_schema,
            helper_table=self.helper_table,
            destination_schema=self.destination_schema,
            destination_table=self.destination_table,
        )


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link: list[RegisteredLink] = Field(default_factory=list)


class Registry:
    """The links a service accepts, read once from the operators' file."""

    def __init__(self, entries: list[RegisteredLink]) -> None:
        """Keep the entries; names must be unique."""
        names = [entry.name for entry in entries]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigurationError(
                f"The link registry names {', '.join(repeated)} more than once."
            )
        self.entries = entries

    @classmethod
    def from_file(cls, path: Path) -> Registry:
        """Read the registry file, naming the problem when it cannot be used."""
        try:
            document = tomllib.loads(path.read_text())
            return cls(_RegistryFile.model_validate(document).link)
        except OSError as error:
            raise ConfigurationError(
                f"The link registry {path} cannot be read: {error}"
            ) from None
        except (tomllib.TOMLDecodeError, ValidationError) as error:
            raise ConfigurationError(
                f"The link registry {path} is not valid: {error}"
            ) from None

    def resolve(self, link: LinkRef | str) -> tuple[LinkRef, str]:
        """Return the link a request names and the source server's address.

        Raises InvalidRequestError when the registry does not accept the link.
        """
        if isinstance(link, str):
            for entry in self.entries:
                if entry.name == link:
                    ref = entry.as_ref()
                    if ref is None:
                        raise InvalidRequestError(
                            f"Registry entry {link!r} holds patterns; a request must"
                            " name its link in full."
                        )
                    return ref, entry.address
            raise InvalidRequestError(f"No link named {link!r} is registered.")
        for entry in self.entries:
            if entry.matches(link):
                return link, entry.address
        raise InvalidRequestError(
            f"Link {link.link_id} is not registered with the services (LINK_REGISTRY)."
        )
