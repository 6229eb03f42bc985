"""Contains the link decorator: the user's side of a link.

``@link(...)`` on an empty class declares the destination table (and the helper
table on the source server) and returns a DataJoint table class. Its
``.source`` is the source table, restrictable as usual, and
``.source.pull()`` publishes pull requests and waits for their completion.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import datajoint as dj
from datajoint.table import FreeTable
from tqdm import tqdm

from link.adapters.kafka import CompletionListener, Publisher, Topics, ensure_topics
from link.adapters.servers import open_destination, open_source
from link.adapters.tables import (
    declare_destination,
    declare_helper,
    find_source_tables,
    quote,
)
from link.config import LinkSettings
from link.domain.events import (
    LinkRef,
    PullCompleted,
    PullRequested,
    RequestRejected,
    RowCounts,
    RowFailure,
)
from link.domain.keys import KeyAttribute, KeyCodec, kind_of_sql_type
from link.errors import (
    ConfigurationError,
    InvalidRequestError,
    NoRowsError,
    RequestTimeoutError,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullResult:
    """What a finished pull did, summed over its requests."""

    request_ids: tuple[str, ...]
    requested: int
    counts: RowCounts
    failures: list[RowFailure] = field(default_factory=list)


@dataclass
class LinkContext:
    """Everything one link's user side needs at hand."""

    ref: LinkRef
    source: dj.Instance
    destination: dj.Instance
    settings: LinkSettings
    helper_table: str

    def key_codec(self, table: dj.Table) -> KeyCodec:
        """Return the key codec of the source table."""
        return KeyCodec(
            tuple(
                KeyAttribute(name, kind_of_sql_type(attr.type, is_uuid=attr.uuid))
                for name, attr in table.heading.attributes.items()
                if attr.in_key
            )
        )


def _publish_and_wait(
    context: LinkContext, keys: list[dict[str, Any]], *, display_progress: bool
) -> PullResult:
    settings = context.settings
    if settings.broker is None:
        raise ConfigurationError(
            "LINK_BROKER is not set: the link needs Kafka to pull (host:port)."
        )
    topics = Topics(settings.topic_prefix)
    ensure_topics(settings.broker, topics.all(), settings.topic_partitions)
    batch_id = uuid.uuid4().hex
    requests = [
        PullRequested(
            request_id=f"{batch_id}-{index}",
            link=context.ref,
            keys=keys[start : start + settings.request_size],
        )
        for index, start in enumerate(range(0, len(keys), settings.request_size))
    ]
    listener = CompletionListener(settings.broker, topics.pull_completions)
    try:
        publisher = Publisher(settings.broker)
        for request in requests:
            publisher.publish(topics.pull_requests, request.request_id, request)
        publisher.flush()
        logger.info(
            "link %s: published %d pull request(s) for %d row(s), first id %s",
            context.ref.link_id,
            len(requests),
            len(keys),
            requests[0].request_id,
        )
        pending = {request.request_id for request in requests}
        outcomes: dict[str, PullCompleted | RequestRejected] = {}
        with tqdm(
            total=len(keys), disable=not display_progress, unit="row", desc="pull"
        ) as progress:
            while pending:
                arrived = listener.wait(pending, settings.pull_timeout)
                if not arrived:
                    raise RequestTimeoutError(
                        f"No completion arrived within {settings.pull_timeout:.0f} s"
                        f" for pull request(s) {', '.join(sorted(pending))} of link"
                        f" {context.ref.link_id}: are the link services running?"
                    )
                for request_id, outcome in arrived.items():
                    outcomes[request_id] = outcome
                    if isinstance(outcome, PullCompleted):
                        progress.update(outcome.counts.total)
                pending -= set(arrived)
    finally:
        listener.close()

    rejected = [o for o in outcomes.values() if isinstance(o, RequestRejected)]
    if rejected:
        raise InvalidRequestError(
            "The link services rejected the pull: "
            + "; ".join(f"{o.request_id}: {o.reason}" for o in rejected)
        )
    counts = RowCounts()
    failures: list[RowFailure] = []
    for outcome in outcomes.values():
        assert isinstance(outcome, PullCompleted)
        counts = counts + outcome.counts
        failures.extend(outcome.failures)
    logger.info(
        "link %s: pull finished: %d shared, %d tainted, %d deprecated,"
        " %d already shared, %d failed",
        context.ref.link_id,
        counts.shared,
        counts.tainted,
        counts.deprecated,
        counts.already_shared,
        counts.failed,
    )
    return PullResult(
        request_ids=tuple(request.request_id for request in requests),
        requested=len(keys),
        counts=counts,
        failures=failures,
    )


class SourceTable(FreeTable):  # type: ignore[misc]
    """The source table of a link, as seen from the destination side."""

    _link_context: LinkContext

    def __init__(self, context: LinkContext) -> None:
        """Bind the source table of the link over the source connection."""
        super().__init__(
            context.source.connection,
            quote(context.ref.source_schema, context.ref.source_table),
        )
        self._link_context = context

    def pull(self, *, display_progress: bool = False) -> PullResult:
        """Pull the rows of this (restricted) source table to the destination."""
        context = self._link_context
        codec = context.key_codec(self)
        keys = [codec.to_message(codec.canonical(key)) for key in self.keys()]
        if not keys:
            raise NoRowsError(
                f"The pull from {context.ref.link_id} matched no rows of the source."
            )
        return _publish_and_wait(context, keys, display_progress=display_progress)

    @property
    def flagged(self) -> dj.Table:
        """Return the source rows that the source has flagged for deletion."""
        context = self._link_context
        helper = dj.FreeTable(context.source.connection, context.helper_table)
        return self & (helper & "is_flagged = 'TRUE'").proj()


class LinkedTable:
    """Mixed into the destination table class: gives it its ``source``."""

    _link_context: LinkContext

    @property
    def source(self) -> SourceTable:
        """Return the source table of the link."""
        return SourceTable(self._link_context)


def link(
    source_host: str,
    source_schema: str,
    helper_schema: str,
    helper_table: str,
    destination_schema: str,
    *,
    stores: Mapping[str, str] | None = None,
) -> Callable[[type], type[Any]]:
    """Link a destination table to the source table of the same class name.

    The source server is reached with LINK_USER and LINK_PASS; the destination is
    DataJoint's own configuration; pulls travel over Kafka at LINK_BROKER.
    """
    store_map = dict(stores or {})

    def decorate(cls: type) -> type[Any]:
        settings = LinkSettings()
        source = open_source(source_host, settings)
        destination = open_destination()
        source_tables = find_source_tables(
            source.connection, source_schema, cls.__name__
        )
        helper = declare_helper(source, helper_schema, helper_table, source_tables)
        table_class = declare_destination(
            destination,
            source.connection,
            destination_schema,
            cls.__name__,
            source_tables,
            store_map,
            bases=(LinkedTable,),
            namespace={"__doc__": cls.__doc__, "__module__": cls.__module__},
        )
        ref = LinkRef(
            source_host=source_host,
            source_schema=source_schema,
            source_table=source_tables.master,
            helper_schema=helper_schema,
            helper_table=helper.table_name,
            destination_schema=destination_schema,
            destination_table=table_class.table_name,
            stores=store_map,
        )
        table_class._link_context = LinkContext(
            ref=ref,
            source=source,
            destination=destination,
            settings=settings,
            helper_table=helper.full_table_name,
        )
        logger.info("link %s ready", ref.link_id)
        return table_class

    return decorate
