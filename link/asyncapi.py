"""Contains the AsyncAPI 3 description of the link services' topics and messages.

``make schemas`` writes it to ``schemas/asyncapi.json`` beside the JSON Schema
of each message, which it references. The application it describes is the
link services as a whole: what they receive, what they send, on which topic,
with which key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from link.adapters.kafka import Topics
from link.domain.events import (
    BatchTransferred,
    BatchTransferredV1,
    DeadLetter,
    DeletionCompleted,
    DeletionCompletedV1,
    DeletionRequested,
    DeletionRequestedV1,
    Message,
    PullCompleted,
    PullRequested,
    PullRequestedV1,
    PullStarted,
    PullStartedV1,
    RequestRejected,
    TransferRequested,
    TransferRequestedV1,
)

KAFKA_BINDING_VERSION = "0.5.0"


@dataclass(frozen=True)
class Channel:
    """One topic: its messages, its key, and which way the services use it."""

    name: str
    address: str
    key: str
    messages: tuple[type[Message], ...]
    receive: bool
    send: bool
    description: str


def channels(topics: Topics) -> tuple[Channel, ...]:
    """Return the link's topics as AsyncAPI channels, in the order of a request."""
    return (
        Channel(
            "pullRequests",
            topics.pull_requests,
            "the request's request_id",
            (PullRequested, PullRequestedV1),
            receive=True,
            send=False,
            description=(
                "Requests to pull rows, from the link library or any other system."
                " Version 1 is still read and upcast to version 2."
            ),
        ),
        Channel(
            "deletionRequests",
            topics.deletion_requests,
            "the request's request_id",
            (DeletionRequested, DeletionRequestedV1),
            receive=True,
            send=False,
            description="Requests to take rows out of the destination again.",
        ),
        Channel(
            "completions",
            topics.completions,
            "the request's request_id",
            (PullCompleted, DeletionCompleted, DeletionCompletedV1, RequestRejected),
            receive=False,
            send=True,
            description=(
                "One outcome per request: its counts and failed keys, or why it"
                " was rejected. A request id published again is answered again"
                " with the first outcome. Older services send DeletionCompleted"
                " at version 1, which the library reads as version 2."
            ),
        ),
        Channel(
            "transfers",
            topics.transfers,
            "request_id/batch_index, so that batches spread over the workers",
            (TransferRequested, TransferRequestedV1),
            receive=True,
            send=True,
            description=(
                "Batches of activated rows, shared by the transfer workers of one"
                " consumer group. Internal to the services. Version 1, from older"
                " services, is read as version 2."
            ),
        ),
        Channel(
            "pullProgress",
            topics.pull_progress,
            "the request's request_id",
            (PullStarted, PullStartedV1, BatchTransferred, BatchTransferredV1),
            receive=True,
            send=True,
            description=(
                "How far each pull has come; the library follows it for its"
                " progress bar. Written by the services only. Version 1, from"
                " older services, is read as version 2."
            ),
        ),
        Channel(
            "deadLetters",
            topics.dead_letters,
            "the request_id when readable, else topic/partition/offset",
            (DeadLetter,),
            receive=False,
            send=True,
            description="Messages that could not be processed, with the reason.",
        ),
    )


def _message_component(
    model: type[Message], key: str, file_name: str
) -> dict[str, Any]:
    return {
        "name": model.__name__,
        "title": model.__name__,
        "summary": (model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "payload": {"$ref": file_name},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"Message key: {key}."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def asyncapi_document(
    version: str, file_names: dict[type[Message], str], partitions: int = 6
) -> dict[str, Any]:
    """Return the AsyncAPI 3.0 document of the default topics."""
    topics = Topics()
    document_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel in channels(topics):
        references = {}
        for model in channel.messages:
            messages[model.__name__] = _message_component(
                model, channel.key, file_names[model]
            )
            references[model.__name__] = {
                "$ref": f"#/components/messages/{model.__name__}"
            }
        document_channels[channel.name] = {
            "address": channel.address,
            "description": channel.description,
            "messages": references,
            "bindings": {
                "kafka": {
                    "topic": channel.address,
                    "partitions": partitions,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        for action, enabled in (("receive", channel.receive), ("send", channel.send)):
            if enabled:
                operations[f"{action}{channel.name[0].upper()}{channel.name[1:]}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel.name}"},
                    "messages": [
                        {"$ref": f"#/channels/{channel.name}/messages/{name}"}
                        for name in references
                    ],
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "datajoint-link services",
            "version": version,
            "description": (
                "The topics through which other systems drive links: publish"
                " requests, read outcomes. Topic names carry the prefix"
                " LINK_TOPIC_PREFIX (default 'link'); partitions are"
                " LINK_TOPIC_PARTITIONS (default 6). Payloads are described by the"
                " JSON Schema files beside this document (draft 2020-12)."
            ),
        },
        "defaultContentType": "application/json",
        "channels": document_channels,
        "operations": operations,
        "components": {"messages": messages},
    }
