"""Contains the translation of primary keys between JSON and the database.

A request names rows by primary-key values as JSON carries them. The database
returns other Python types for the same values (``datetime``, 16-byte UUIDs,
``Decimal``). Both sides are brought to one canonical JSON form so that a key
from a message and a key read from a table compare equal.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from link.domain.events import KeyValue, PrimaryKey
from link.errors import InvalidRequestError


class KeyKind(enum.Enum):
    """How the values of one primary-key attribute are written and compared."""

    INTEGER = enum.auto()
    NUMBER = enum.auto()
    DECIMAL = enum.auto()
    TEXT = enum.auto()
    DATE = enum.auto()
    DATETIME = enum.auto()
    UUID = enum.auto()


@dataclass(frozen=True)
class KeyAttribute:
    """One primary-key attribute: its name and kind."""

    name: str
    kind: KeyKind


CanonicalKey = tuple[KeyValue, ...]


def kind_of_sql_type(sql_type: str, *, is_uuid: bool) -> KeyKind:
    """Return the kind of a primary-key attribute from its SQL type."""
    base = sql_type.lower()
    if is_uuid:
        return KeyKind.UUID
    if base.startswith(("tinyint", "smallint", "mediumint", "int", "bigint")):
        return KeyKind.INTEGER
    if base.startswith(("float", "double", "real")):
        return KeyKind.NUMBER
    if base.startswith(("decimal", "numeric")):
        return KeyKind.DECIMAL
    if base.startswith("datetime") or base.startswith("timestamp"):
        return KeyKind.DATETIME
    if base.startswith("date"):
        return KeyKind.DATE
    return KeyKind.TEXT


def _invalid(
    attribute: KeyAttribute, value: object, expected: str
) -> InvalidRequestError:
    return InvalidRequestError(
        f"Primary-key attribute {attribute.name!r} takes {expected}, got {value!r}."
    )


def to_sql_value(attribute: KeyAttribute, value: object) -> Any:
    """Return the value to send to the database for one key attribute."""
    kind = attribute.kind
    if value is None:
        raise _invalid(attribute, value, "a value, not null")
    if kind is KeyKind.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(attribute, value, "an integer")
        return value
    if kind is KeyKind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(attribute, value, "a number")
        return value
    if kind is KeyKind.DECIMAL:
        try:
            return decimal.Decimal(str(value))
        except decimal.InvalidOperation:
            raise _invalid(attribute, value, "a decimal number") from None
    # Dates, times and UUIDs travel as strings: a number is refused rather than
    # read as one (Python would take 20240101 for a date).
    if kind is KeyKind.UUID:
        if isinstance(value, uuid.UUID):
            return value.bytes
        if not isinstance(value, str):
            raise _invalid(attribute, value, "a UUID")
        try:
            return uuid.UUID(value).bytes
        except ValueError:
            raise _invalid(attribute, value, "a UUID") from None
    if kind is KeyKind.DATETIME:
        if isinstance(value, datetime.datetime):
            return value
        if not isinstance(value, str):
            raise _invalid(attribute, value, "an ISO 8601 date and time")
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            raise _invalid(attribute, value, "an ISO 8601 date and time") from None
    if kind is KeyKind.DATE:
        if isinstance(value, datetime.date):
            return value
        if not isinstance(value, str):
            raise _invalid(attribute, value, "an ISO 8601 date")
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise _invalid(attribute, value, "an ISO 8601 date") from None
    if not isinstance(value, str):
        raise _invalid(attribute, value, "a string")
    return value


def _canonical_decimal(value: decimal.Decimal) -> str:
    """Return a decimal without trailing zeros: the column's scale is not kept."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def to_json_value(attribute: KeyAttribute, value: object) -> KeyValue:
    """Return the canonical JSON form of a key value read from the database."""
    kind = attribute.kind
    if kind is KeyKind.UUID:
        if isinstance(value, bytes):
            return str(uuid.UUID(bytes=value))
        return str(uuid.UUID(str(value)))
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _canonical_decimal(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        # numpy scalars and other number types from the user's side
        if hasattr(value, "item"):
            return to_json_value(attribute, value.item())
        raise _invalid(attribute, value, "a plain value")
    return value


def _plain(attribute: KeyAttribute, value: object) -> int | str | None:
    """Return an integer or text value that is its own canonical and SQL form.

    Most keys are such values, and a key is translated many times per request:
    they skip the general translation. Anything else gives None.
    """
    kind = attribute.kind
    if (kind is KeyKind.INTEGER and type(value) is int) or (
        kind is KeyKind.TEXT and type(value) is str
    ):
        return value
    return None


@dataclass(frozen=True)
class KeyCodec:
    """Translates the primary keys of one table."""

    attributes: tuple[KeyAttribute, ...]

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """Return the primary-key attribute names, in table order."""
        return tuple(attribute.name for attribute in self.attributes)

    @functools.cached_property
    def _name_set(self) -> frozenset[str]:
        return frozenset(self.names)

    def check(self, key: Mapping[str, object]) -> None:
        """Raise unless the key names exactly the primary-key attributes."""
        if key.keys() == self._name_set:
            return
        expected = set(self.names)
        given = set(key)
        if given != expected:
            missing = sorted(expected - given)
            extra = sorted(given - expected)
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if extra:
                parts.append(f"not in the primary key: {', '.join(extra)}")
            raise InvalidRequestError(
                f"The key {dict(key)!r} does not match the primary key"
                f" ({', '.join(self.names)}): {'; '.join(parts)}."
            )

    def to_sql(self, key: Mapping[str, object]) -> tuple[Any, ...]:
        """Return the database values of a key, checking every attribute."""
        self.check(key)
        return tuple(to_sql_value(attr, key[attr.name]) for attr in self.attributes)

    def canonical_to_sql(self, canonical: CanonicalKey) -> tuple[Any, ...]:
        """Return the database values of a key in canonical form."""
        return tuple(
            to_sql_value(attr, value)
            if (plain := _plain(attr, value)) is None
            else plain
            for attr, value in zip(self.attributes, canonical, strict=True)
        )

    def canonical(self, key: Mapping[str, object]) -> CanonicalKey:
        """Return the canonical form of a key from a message or from the user."""
        self.check(key)
        return tuple(
            to_json_value(attr, to_sql_value(attr, value))
            if (plain := _plain(attr, value)) is None
            else plain
            for attr, value in ((attr, key[attr.name]) for attr in self.attributes)
        )

    def canonical_from_sql(self, values: Sequence[object]) -> CanonicalKey:
        """Return the canonical form of a key read from the database."""
        return tuple(
            to_json_value(attr, value)
            if (plain := _plain(attr, value)) is None
            else plain
            for attr, value in zip(self.attributes, values, strict=True)
        )

    def to_message(self, canonical: CanonicalKey) -> PrimaryKey:
        """Return a key in the form messages carry."""
        return dict(zip(self.names, canonical, strict=True))
