"""Contains the export of the public messages' JSON Schemas into ``schemas/``.

Run ``python -m link.schemas_export`` (``make schemas``) to write one file per
model of ``PUBLIC_MESSAGES``; ``--check`` only compares the files with the
models and exits 1 when they drift apart. The schemas are generated in
validation mode: they describe what a service accepts, which is what a
publisher must produce.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from link.asyncapi import asyncapi_document
from link.domain.events import PUBLIC_MESSAGES, Message

ASYNCAPI_VERSION = "1.0.0"
"""The version of the public interface the AsyncAPI document describes."""

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
"""Where the schema files live: ``schemas/`` at the repository root."""

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def kebab_case(name: str) -> str:
    """Return a CamelCase name in kebab-case, e.g. ``pull-requested``."""
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", words).lower()


def message_type(model: type[Message]) -> str:
    """Return the ``type`` that a message model writes into its messages."""
    default = model.model_fields["type"].default
    if not isinstance(default, str):
        raise TypeError(f"{model.__name__} has no string default for its type field.")
    return default


def message_version(model: type[Message]) -> int:
    """Return the ``schema_version`` that a message model writes."""
    default = model.model_fields["schema_version"].default
    if isinstance(default, bool) or not isinstance(default, int):
        raise TypeError(f"{model.__name__} has no integer default schema version.")
    return default


def schema_file_name(model: type[Message]) -> str:
    """Return the file name of a model's schema, e.g. ``pull-requested.v1.json``."""
    return f"{kebab_case(message_type(model))}.v{message_version(model)}.json"


def _named_by_title(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a schema whose definitions are named by their titles.

    pydantic names a definition after its class; the model of an older
    version (``DeletionCountsV1``) keeps the name it was published under, its
    title (``DeletionCounts``), unless another definition already has it.
    """
    definitions: dict[str, Any] = schema.get("$defs", {})
    taken = set(definitions)
    renames: dict[str, str] = {}
    for name, definition in definitions.items():
        title = definition.get("title", name)
        if title != name and title not in taken:
            renames[name] = title
            taken.add(title)
    if not renames:
        return schema
    text = json.dumps(schema)
    for name, title in renames.items():
        text = text.replace(f'"#/$defs/{name}"', f'"#/$defs/{title}"')
    renamed: dict[str, Any] = json.loads(text)
    renamed["$defs"] = {
        renames.get(name, name): definition
        for name, definition in renamed["$defs"].items()
    }
    return renamed


def schema_of(model: type[Message]) -> dict[str, object]:
    """Return the JSON Schema of a model, with its dialect and its id."""
    kebab = kebab_case(message_type(model))
    schema: dict[str, object] = _named_by_title(
        model.model_json_schema(mode="validation")
    )
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["$id"] = f"urn:datajoint-link:schema:{kebab}:v{message_version(model)}"
    return schema


ASYNCAPI_FILE = "asyncapi.json"
"""The AsyncAPI document's file name in ``schemas/``."""


def render_schemas() -> dict[str, str]:
    """Return the text of every schema file and the AsyncAPI document, by name."""
    rendered: dict[str, str] = {}
    for model in PUBLIC_MESSAGES:
        name = schema_file_name(model)
        if name in rendered:
            raise ValueError(f"Two message models would both write {name}.")
        text = json.dumps(schema_of(model), indent=2, sort_keys=True)
        rendered[name] = text + "\n"
    document = asyncapi_document(
        f"{ASYNCAPI_VERSION}",
        {model: schema_file_name(model) for model in PUBLIC_MESSAGES},
    )
    rendered[ASYNCAPI_FILE] = json.dumps(document, indent=2) + "\n"
    return rendered


def drift(directory: Path, rendered: dict[str, str]) -> list[str]:
    """Return one line per file that differs from, lacks or exceeds the models."""
    present = {path.name: path for path in directory.glob("*.json")}
    problems: list[str] = []
    for name, text in sorted(rendered.items()):
        path = present.get(name)
        if path is None:
            problems.append(f"missing: {name}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"drifted: {name}")
    problems.extend(
        f"extra: {name}" for name in sorted(present) if name not in rendered
    )
    return problems


def write_schemas(directory: Path, rendered: dict[str, str]) -> list[str]:
    """Write the schema files and delete stale ones; return one line per change."""
    directory.mkdir(parents=True, exist_ok=True)
    changes: list[str] = []
    for name, text in sorted(rendered.items()):
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changes.append(f"written: {name}")
    for path in sorted(directory.glob("*.json")):
        if path.name not in rendered:
            path.unlink()
            changes.append(f"deleted: {path.name}")
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema files, or with ``--check`` report how they drifted."""
    parser = argparse.ArgumentParser(
        prog="python -m link.schemas_export",
        description="Write the JSON Schema of every public message into schemas/.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare the files with the models and exit 1 on drift; write nothing",
    )
    arguments = parser.parse_args(argv)
    rendered = render_schemas()
    if arguments.check:
        problems = drift(SCHEMAS_DIR, rendered)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("Run `make schemas` to update schemas/.", file=sys.stderr)
            return 1
        return 0
    changes = write_schemas(SCHEMAS_DIR, rendered)
    for change in changes:
        print(change)
    print(f"{len(rendered)} schema(s) in {SCHEMAS_DIR}, {len(changes)} change(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
