"""Contains the link decorator: the user's side of a link.

``@link(...)`` on an empty class declares the destination table (and the helper
table on the source server) and returns a DataJoint table class. Its
``.source`` is the source table, restrictable as usual; ``.source.pull()``
pulls rows and ``.delete()`` on the destination takes rows out again, both
through the row lifecycle, carried out by the services over Kafka or, without
LINK_BROKER, in this process.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import datajoint as dj
from datajoint.condition import Not
from datajoint.table import FreeTable
from tqdm import tqdm

from link.adapters.link_records import register_link
from link.adapters.literals import keys_in
from link.adapters.objects import StoredObjects
from link.adapters.servers import open_destination, open_source, read_in_link_session
from link.adapters.tables import (
    declare_destination,
    declare_helper,
    find_source_tables,
    plan_destination,
    quote,
)
from link.config import LinkSettings, load_settings
from link.domain.events import LinkRef, PrimaryKey, RowFailure
from link.domain.keys import KeyAttribute, KeyCodec, kind_of_sql_type
from link.errors import (
    AlreadySharedWarning,
    ConfigurationError,
    IncompleteRequestError,
    LinkError,
    NoRowsError,
    OrphanedRowsWarning,
)
from link.executors import (
    DeletionResult,
    EmbeddedExecutor,
    Executor,
    FinishedPull,
    KafkaClients,
    KafkaExecutor,
    PullHandle,
    PullResult,
)

logger = logging.getLogger(__name__)

__all__ = ["DeletionResult", "PullResult", "link"]


@dataclass
class LinkContext:
    """Everything one link's user side needs at hand."""

    ref: LinkRef
    source: dj.Instance
    destination: dj.Instance
    settings: LinkSettings
    helper_table: str
    executor: Executor
    source_heading: Any = None
    """The source table's heading, read from the server on first use only."""

    @staticmethod
    def codec_of(table: Any) -> KeyCodec:
        """Return the key codec of a table from its heading."""
        return KeyCodec(
            tuple(
                KeyAttribute(name, kind_of_sql_type(attr.type, is_uuid=attr.uuid))
                for name, attr in table.heading.attributes.items()
                if attr.in_key
            )
        )

    def message_keys(self, table: Any) -> list[PrimaryKey]:
        """Return the primary keys of a (restricted) table, as messages carry them."""
        codec = self.codec_of(table)
        return [
            codec.to_message(codec.canonical_from_sql(row))
            for row in key_rows(table, codec)
        ]


def key_rows(expression: Any, codec: KeyCodec) -> list[tuple[Any, ...]]:
    """Return the raw primary-key values of a query expression's rows.

    Raw SQL rows: DataJoint's keys() decodes each into a dictionary first,
    which takes most of the time for a large table.
    """
    sql = expression.proj().make_sql(list(codec.names))
    return list(read_in_link_session(expression.connection, sql).fetchall())


def _first_failures(failures: list[RowFailure], shown: int = 3) -> str:
    listed = "; ".join(
        f"{failure.key}: {failure.reason}" for failure in failures[:shown]
    )
    more = f" (and {len(failures) - shown} more)" if len(failures) > shown else ""
    return f"Failed: {listed}{more}."


def key_condition(expression: Any) -> str:
    """Return an SQL condition naming the rows of an expression on the other server.

    Source and destination live on different servers, so one side's rows are
    named to the other by their keys.
    """
    codec = LinkContext.codec_of(expression)
    return keys_in(codec.names, key_rows(expression, codec))


def by_keys_across_servers(restriction: Any, other_side: type) -> Any:
    """Return a restriction by a table of the other server as one by its keys.

    A plain or negated (``a - b``) restriction by the other side's table is
    replaced by its key condition; any other restriction is returned as is.
    """
    if isinstance(restriction, other_side):
        return key_condition(restriction)
    if isinstance(restriction, Not) and isinstance(restriction.restriction, other_side):
        return Not(key_condition(restriction.restriction))
    return restriction


class SourceTable(FreeTable):  # type: ignore[misc]
    """The source table of a link, as seen from the destination side."""

    _link_context: LinkContext

    def __init__(self, context: LinkContext) -> None:
        """Bind the source table of the link over the source connection."""
        super().__init__(
            context.source.connection,
            quote(context.ref.source_schema, context.ref.source_table),
        )
        # .source is built anew at every access; its heading is read from the
        # server once per link, as DataJoint does for a declared table class
        # (and, like it, does not see the table altered meanwhile).
        if context.source_heading is None:
            context.source_heading = self.heading
        else:
            self._heading = context.source_heading
        self._link_context = context

    def key_codec(self) -> KeyCodec:
        """Return the codec of this table's primary key."""
        return self._link_context.codec_of(self)

    def restrict(self, restriction: Any, semantic_check: bool = True) -> Any:
        """Restrict as usual; the linked table restricts by its primary keys.

        ``Table().source - Table()`` is the source rows not pulled yet, and
        ``Table().source & Table()`` those pulled: the destination's keys are
        fetched and used, as the two tables live on different servers.
        """
        restriction = by_keys_across_servers(restriction, LinkedTable)
        return super().restrict(restriction, semantic_check)

    @overload
    def pull(
        self, *, display_progress: bool = False, wait: Literal[True] = True
    ) -> PullResult: ...

    @overload
    def pull(
        self, *, display_progress: bool = False, wait: Literal[False]
    ) -> PullHandle | FinishedPull: ...

    def pull(
        self, *, display_progress: bool = False, wait: bool = True
    ) -> PullResult | PullHandle | FinishedPull:
        """Pull the rows of this (restricted) source table to the destination.

        With ``wait=False`` it returns as soon as the requests are published: a
        handle with the request ids, their ``status`` and ``wait(timeout)``. In
        embedded mode the pull is carried out before it returns all the same.
        """
        context = self._link_context
        # The Kafka clients open while the keys are read.
        context.executor.connect_ahead()
        keys = context.message_keys(self)
        if not keys:
            raise NoRowsError(
                f"The pull from {context.ref.link_id} matched no rows of the source."
            )
        executor = context.executor
        if not wait:
            if isinstance(executor, KafkaExecutor):
                return executor.submit_pull(keys, check=self._report)
            return FinishedPull(executor.pull(keys, tqdm(disable=True)), self._report)
        with tqdm(
            total=len(keys), disable=not display_progress, unit="row", desc="pull"
        ) as progress:
            result = executor.pull(keys, progress)
        return self._report(result)

    def _report(self, result: PullResult) -> PullResult:
        context = self._link_context
        counts = result.counts
        if counts.already_shared == result.requested:
            notice = (
                f"link {context.ref.link_id}: all {result.requested} requested"
                " row(s) were already shared; nothing was pulled"
            )
            logger.warning("%s", notice)
            # stacklevel 3: the user's call of pull() or of its handle's wait().
            warnings.warn(notice, AlreadySharedWarning, stacklevel=3)
        logger.info(
            "link %s requests %s: %d shared, %d tainted, %d deprecated,"
            " %d already shared, %d failed",
            context.ref.link_id,
            ", ".join(result.request_ids),
            counts.shared,
            counts.tainted,
            counts.deprecated,
            counts.already_shared,
            counts.failed,
        )
        if counts.failed:
            raise IncompleteRequestError(
                f"{counts.failed} of {result.requested} row(s) could not be pulled"
                f" from {context.ref.link_id}; the others were."
                f" {_first_failures(result.failures)}",
                result,
            )
        return result

    @property
    def flagged(self) -> Any:
        """Return the source rows that the source has flagged for deletion."""
        context = self._link_context
        helper = FreeTable(context.source.connection, context.helper_table)
        # Without semantic checks: a source schema that DataJoint 2 did not
        # declare (the older tool's, plain SQL) has no lineage to compare.
        return self.restrict(
            (helper & "is_flagged = 'TRUE'").proj(), semantic_check=False
        )


class _SourceOfTheLink:
    """Gives ``Table.source`` and ``Table().source`` alike: the link's source."""

    def __get__(self, instance: object, owner: type) -> Any:
        context = getattr(owner, "_link_context", None)
        # DataJoint looks the class over while declaring it, before the link's
        # context is attached: the descriptor then stands for itself.
        return self if context is None else SourceTable(context)


class WrittenByTheLink:
    """Refuses the writes that would bypass the link on a destination table."""

    def delete_quick(self, *_args: Any, **_kwargs: Any) -> None:
        """Refuse: a quick delete would bypass the helper table."""
        raise LinkError(
            "Rows of a linked table are deleted with delete() on the linked"
            " table, which keeps the source's helper table in step;"
            " delete_quick() would not."
        )

    def insert(self, *_args: Any, **_kwargs: Any) -> None:
        """Refuse: the destination rows of a link are written by the link alone."""
        raise LinkError(
            "The destination rows of a link are written by the link alone:"
            " pull them with .source.pull()."
        )


class LinkedPart(WrittenByTheLink):
    """Mixed into the destination's part tables: they follow their master."""

    def delete(self, *_args: Any, **_kwargs: Any) -> int:
        """Refuse: part rows leave with their master's row."""
        raise LinkError(
            "Part rows of a linked table leave with their master's row: delete"
            " from the linked table itself."
        )

    def drop(self, *_args: Any, **_kwargs: Any) -> None:
        """Refuse: a part table is dropped with its master."""
        raise LinkError(
            "A part table of a linked table is dropped with the linked table"
            " itself, once its rows are deleted with delete()."
        )

    def drop_quick(self) -> None:
        """Refuse, as drop(): the part rows would be lost under Shared rows."""
        self.drop()


class LinkedTable(WrittenByTheLink):
    """Mixed into the destination table class: the link's side of the table."""

    _link_context: LinkContext
    source = _SourceOfTheLink()

    def restrict(self, restriction: Any, semantic_check: bool = True) -> Any:
        """Restrict as usual; a source expression restricts by its primary keys.

        The source lives on another server, so it cannot take part in a query
        on the destination: its keys are fetched and used instead.
        """
        restriction = by_keys_across_servers(restriction, SourceTable)
        return super().restrict(restriction, semantic_check)  # type: ignore[misc]

    def _refuse_to_drop_rows(self) -> None:
        """Raise while the table holds rows: their helper rows say Shared.

        Dropped with its rows, the table would leave the source's helper table
        recording copies that no longer exist, and those rows could be neither
        pulled nor deleted again.
        """
        held = len(type(self)())  # type: ignore[arg-type]
        if held:
            context = self._link_context
            raise LinkError(
                f"{context.ref.destination_schema}.{context.ref.destination_table}"
                f" still holds {held} row(s) pulled through the link: delete() them"
                " first, which keeps the source's helper table in step, then drop"
                " the empty table."
            )

    def drop(self, *args: Any, **kwargs: Any) -> None:
        """Drop the table as DataJoint does, once delete() has emptied it."""
        self._refuse_to_drop_rows()
        super().drop(*args, **kwargs)  # type: ignore[misc]

    def drop_quick(self) -> None:
        """Drop the table without cascading, once delete() has emptied it."""
        self._refuse_to_drop_rows()
        super().drop_quick()  # type: ignore[misc]

    def delete(self, *, prompt: bool | None = None) -> int:
        """Take the restricted rows out of the destination through the lifecycle.

        Returns the number of rows deleted. Flagged rows end deprecated; the
        others return to Unshared and can be pulled again, and rows that the
        source deleted leave the link altogether (with a warning). Like DataJoint's
        own delete, it asks first when prompt is true or, by default, when
        DataJoint's safemode is on, and deleting no rows returns 0: a regular
        clean-up of flagged rows finds none most of the time.
        """
        context = self._link_context
        context.executor.connect_ahead()
        keys = context.message_keys(self)
        if not keys:
            logger.info("link %s: no rows to delete", context.ref.link_id)
            return 0
        ask = dj.config["safemode"] if prompt is None else prompt
        if ask:
            answer = input(
                f"Delete {len(keys)} row(s) of {context.ref.destination_schema}."
                f"{context.ref.destination_table} and their parts, through the"
                " link? [yes/No]: "
            )
            if answer.strip().lower() != "yes":
                logger.warning("link %s: deletion cancelled", context.ref.link_id)
                return 0
        result = context.executor.delete(keys)
        counts = result.counts
        if counts.orphaned:
            # A warning, not a log line: embedded, the deletion's handler has
            # logged it already in this process.
            warnings.warn(
                f"link {context.ref.link_id}: {counts.orphaned} row(s) were no"
                " longer in the source table: the source deleted them, and their"
                " helper rows with them. They were deleted from the destination"
                " too.",
                OrphanedRowsWarning,
                stacklevel=2,
            )
        logger.info(
            "link %s requests %s: deleted %d row(s), %d unshared, %d deprecated,"
            " %d orphaned, %d already gone, %d failed",
            context.ref.link_id,
            ", ".join(result.request_ids),
            result.requested,
            counts.unshared,
            counts.deprecated,
            counts.orphaned,
            counts.already_gone,
            counts.failed,
        )
        if counts.failed:
            raise IncompleteRequestError(
                f"{counts.failed} of {result.requested} row(s) could not be deleted"
                f" from {context.ref.link_id}; the others were."
                f" {_first_failures(result.failures)}",
                result,
            )
        return counts.unshared + counts.deprecated + counts.orphaned


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
    DataJoint's own configuration. With LINK_BROKER set, pulls and deletions are
    carried out by the link services over Kafka; without it, in this process.
    """
    store_map = dict(stores or {})

    def decorate(cls: type) -> type[Any]:
        settings = load_settings()
        # The Kafka clients open while the tables are checked and declared.
        clients = KafkaClients(settings, settings.broker) if settings.broker else None
        if clients is not None:
            clients.open_in_background()
        source = open_source(source_host, settings)
        destination = open_destination()
        source_tables = find_source_tables(
            source.connection, source_schema, cls.__name__
        )
        # Everything that can refuse the link is checked before the first write.
        plan = plan_destination(
            destination.connection,
            source.connection,
            destination_schema,
            cls.__name__,
            source_tables,
            store_map,
        )
        for source_store, destination_store in store_map.items():
            for side, instance, store in (
                ("source", source, source_store),
                ("destination", destination, destination_store),
            ):
                try:
                    instance.config.get_store_spec(store)
                except dj.errors.DataJointError as error:
                    raise ConfigurationError(
                        f"The stores mapping names {side} store {store!r}, which"
                        f" DataJoint's configuration does not define: {error}"
                    ) from None
        StoredObjects(source, destination, store_map).check(
            [
                (FreeTable(source.connection, quote(source_schema, table)), "")
                for table in (source_tables.master, *source_tables.parts)
            ],
            destination_declared=False,
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
            part_bases=(LinkedPart,),
            namespace={"__doc__": cls.__doc__, "__module__": cls.__module__},
            plan=plan,
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
        register_link(destination.connection, ref)
        executor: Executor = (
            KafkaExecutor(ref, settings, settings.broker, clients)
            if settings.broker
            else EmbeddedExecutor(ref, source, destination, settings)
        )
        table_class._link_context = LinkContext(
            ref=ref,
            source=source,
            destination=destination,
            settings=settings,
            helper_table=helper.full_table_name,
            executor=executor,
        )
        logger.info(
            "link %s ready (%s)",
            ref.link_id,
            "over Kafka" if settings.broker else "embedded",
        )
        return table_class

    return decorate
