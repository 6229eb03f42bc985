"""Tests of the translation of primary keys between JSON and the database."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import numpy as np
import pytest

from link.domain.events import KeyValue
from link.domain.keys import KeyAttribute, KeyCodec, KeyKind, kind_of_sql_type
from link.errors import InvalidRequestError

ANIMAL_UUID = "9b2f7d4e-3c1a-4f6b-8e2d-5a7c9e1b3d40"


def codec_of(**kinds: KeyKind) -> KeyCodec:
    """Return a codec for a primary key of the given attributes, in order."""
    return KeyCodec(tuple(KeyAttribute(name, kind) for name, kind in kinds.items()))


SESSION = codec_of(subject_id=KeyKind.INTEGER, session_date=KeyKind.DATE)


@pytest.mark.parametrize(
    ("kind", "json_value", "sql_value"),
    [
        pytest.param(KeyKind.INTEGER, 42, 42, id="integer"),
        pytest.param(KeyKind.NUMBER, 2.5, 2.5, id="number"),
        pytest.param(KeyKind.DECIMAL, "12.75", decimal.Decimal("12.75"), id="decimal"),
        pytest.param(KeyKind.TEXT, "mouse-7", "mouse-7", id="text"),
        pytest.param(KeyKind.DATE, "2024-01-31", datetime.date(2024, 1, 31), id="date"),
        pytest.param(
            KeyKind.DATETIME,
            "2024-01-31T10:05:00",
            datetime.datetime(2024, 1, 31, 10, 5),
            id="datetime",
        ),
        pytest.param(
            KeyKind.DATETIME,
            "2024-01-31T10:05:00.250000",
            datetime.datetime(2024, 1, 31, 10, 5, 0, 250_000),
            id="datetime-microseconds",
        ),
        pytest.param(
            KeyKind.UUID, ANIMAL_UUID, uuid.UUID(ANIMAL_UUID).bytes, id="uuid"
        ),
    ],
)
def test_a_key_round_trips_through_the_database_form(
    kind: KeyKind, json_value: KeyValue, sql_value: object
) -> None:
    codec = codec_of(value=kind)

    sent = codec.to_sql({"value": json_value})
    canonical = codec.canonical_from_sql(sent)
    message = codec.to_message(canonical)

    assert sent == (sql_value,)
    assert codec.canonical_to_sql(canonical) == sent
    assert message == {"value": json_value}
    assert codec.canonical(message) == canonical
    assert json.loads(json.dumps(message)) == message


@pytest.mark.parametrize(
    ("kind", "json_value", "db_value"),
    [
        pytest.param(KeyKind.INTEGER, 7, 7, id="integer"),
        pytest.param(KeyKind.INTEGER, 7, np.int64(7), id="integer-numpy"),
        pytest.param(KeyKind.NUMBER, 3, 3.0, id="number-int-vs-float"),
        pytest.param(KeyKind.NUMBER, 0.5, np.float64(0.5), id="number-numpy"),
        pytest.param(
            KeyKind.DECIMAL, "1.25", decimal.Decimal("1.25"), id="decimal-string"
        ),
        pytest.param(KeyKind.DECIMAL, 1.25, decimal.Decimal("1.25"), id="decimal"),
        pytest.param(KeyKind.TEXT, "a", "a", id="text"),
        pytest.param(KeyKind.DATE, "2024-01-01", datetime.date(2024, 1, 1), id="date"),
        pytest.param(
            KeyKind.DATETIME,
            "2024-01-01T10:00:00",
            datetime.datetime(2024, 1, 1, 10),
            id="datetime",
        ),
        pytest.param(
            KeyKind.DATETIME,
            "2024-01-01 10:00:00",
            datetime.datetime(2024, 1, 1, 10),
            id="datetime-with-space",
        ),
        pytest.param(
            KeyKind.DATETIME,
            "2024-01-01",
            datetime.datetime(2024, 1, 1),
            id="datetime-midnight-as-date",
        ),
        pytest.param(
            KeyKind.UUID, ANIMAL_UUID, uuid.UUID(ANIMAL_UUID).bytes, id="uuid-bytes"
        ),
        pytest.param(
            KeyKind.UUID,
            ANIMAL_UUID.upper(),
            uuid.UUID(ANIMAL_UUID).bytes,
            id="uuid-upper-case",
        ),
        pytest.param(
            KeyKind.UUID, ANIMAL_UUID, uuid.UUID(ANIMAL_UUID), id="uuid-object"
        ),
    ],
)
def test_a_json_key_equals_the_same_key_read_from_the_database(
    kind: KeyKind, json_value: KeyValue, db_value: object
) -> None:
    codec = codec_of(value=kind)

    from_message = codec.canonical({"value": json_value})
    from_database = codec.canonical_from_sql((db_value,))

    assert from_message == from_database
    assert hash(from_message) == hash(from_database)


def test_a_decimal_key_equals_the_database_value_at_the_column_scale() -> None:
    codec = codec_of(price=KeyKind.DECIMAL)

    from_message = codec.canonical({"price": 1.5})
    from_database = codec.canonical_from_sql((decimal.Decimal("1.50"),))

    assert from_message == from_database


def test_a_composite_key_keeps_the_table_order() -> None:
    key = {"session_date": "2024-03-01", "subject_id": 3}

    canonical = SESSION.canonical(key)
    message = SESSION.to_message(canonical)

    assert canonical == (3, "2024-03-01")
    assert list(message) == ["subject_id", "session_date"]
    assert SESSION.names == ("subject_id", "session_date")


def test_a_missing_attribute_is_named() -> None:
    with pytest.raises(InvalidRequestError, match="missing session_date") as caught:
        SESSION.canonical({"subject_id": 3})

    assert "subject_id, session_date" in str(caught.value)


def test_an_extra_attribute_is_named() -> None:
    key = {"subject_id": 3, "session_date": "2024-03-01", "notes": "x"}

    with pytest.raises(InvalidRequestError, match="not in the primary key: notes"):
        SESSION.canonical(key)


def test_missing_and_extra_attributes_are_both_named() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        SESSION.canonical({"subject_id": 3, "session": "2024-03-01"})

    message = str(caught.value)
    assert "missing session_date" in message
    assert "not in the primary key: session" in message


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        pytest.param(KeyKind.INTEGER, "3", "an integer", id="string-for-integer"),
        pytest.param(KeyKind.INTEGER, True, "an integer", id="bool-for-integer"),
        pytest.param(KeyKind.INTEGER, 3.5, "an integer", id="float-for-integer"),
        pytest.param(KeyKind.NUMBER, False, "a number", id="bool-for-number"),
        pytest.param(KeyKind.NUMBER, "2.5", "a number", id="string-for-number"),
        pytest.param(KeyKind.DECIMAL, "twelve", "a decimal", id="bad-decimal"),
        pytest.param(KeyKind.DECIMAL, True, "a decimal", id="bool-for-decimal"),
        pytest.param(KeyKind.TEXT, 7, "a string", id="integer-for-text"),
        pytest.param(KeyKind.UUID, "not-a-uuid", "a UUID", id="bad-uuid"),
        pytest.param(KeyKind.UUID, ANIMAL_UUID[:-1], "a UUID", id="short-uuid"),
        pytest.param(KeyKind.DATE, "2024-02-30", "an ISO 8601 date", id="bad-date"),
        pytest.param(KeyKind.DATE, "yesterday", "an ISO 8601 date", id="word-date"),
        pytest.param(
            KeyKind.DATETIME,
            "2024-01-01T25:00:00",
            "an ISO 8601 date and time",
            id="bad-datetime",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_attribute(
    kind: KeyKind, value: KeyValue, expected: str
) -> None:
    codec = codec_of(animal=kind)

    with pytest.raises(InvalidRequestError) as caught:
        codec.canonical({"animal": value})

    message = str(caught.value)
    assert "'animal'" in message
    assert expected in message
    assert repr(value) in message


@pytest.mark.parametrize("kind", list(KeyKind), ids=[kind.name for kind in KeyKind])
def test_null_is_refused_for_every_kind(kind: KeyKind) -> None:
    codec = codec_of(animal=kind)

    with pytest.raises(InvalidRequestError, match="'animal' takes a value, not null"):
        codec.canonical({"animal": None})


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        pytest.param(KeyKind.DATE, 20240101, id="integer-for-date"),
        pytest.param(KeyKind.DATETIME, 20240101, id="integer-for-datetime"),
        pytest.param(
            KeyKind.UUID, 12345678123456781234567812345678, id="integer-for-uuid"
        ),
    ],
)
def test_a_number_is_refused_where_a_string_is_expected(
    kind: KeyKind, value: KeyValue
) -> None:
    codec = codec_of(animal=kind)

    with pytest.raises(InvalidRequestError, match="'animal'"):
        codec.canonical({"animal": value})


@pytest.mark.parametrize(
    ("sql_type", "is_uuid", "kind"),
    [
        pytest.param("int unsigned", False, KeyKind.INTEGER, id="int"),
        pytest.param("tinyint", False, KeyKind.INTEGER, id="tinyint"),
        pytest.param("bigint", False, KeyKind.INTEGER, id="bigint"),
        pytest.param("double", False, KeyKind.NUMBER, id="double"),
        pytest.param("float", False, KeyKind.NUMBER, id="float"),
        pytest.param("decimal(5,2)", False, KeyKind.DECIMAL, id="decimal"),
        pytest.param("varchar(16)", False, KeyKind.TEXT, id="varchar"),
        pytest.param("date", False, KeyKind.DATE, id="date"),
        pytest.param("datetime(3)", False, KeyKind.DATETIME, id="datetime"),
        pytest.param("timestamp", False, KeyKind.DATETIME, id="timestamp"),
        pytest.param("binary(16)", True, KeyKind.UUID, id="uuid"),
    ],
)
def test_kind_of_sql_type(sql_type: str, is_uuid: bool, kind: KeyKind) -> None:
    result = kind_of_sql_type(sql_type, is_uuid=is_uuid)

    assert result is kind
