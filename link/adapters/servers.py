"""Contains the opening of connections to the source and destination servers.

Each side gets its own ``dj.Instance``: its own configuration and connection,
so that the source's credentials and the destination's never mix, and neither
touches the global ``dj.config`` that the user's own pipeline relies on.
"""

from __future__ import annotations

import logging
import os
import warnings
import weakref
from typing import Any

import datajoint as dj
import pymysql

from link.config import LinkSettings
from link.errors import ConfigurationError, DestinationError, SourceError

logger = logging.getLogger(__name__)

_ACCESS_DENIED = 1045
_UNKNOWN_HOST_OR_REFUSED = (2003, 2005, 2006, 2013)

# DataJoint 2 warns on every connection to MariaDB; the link is tested on
# MariaDB and says so in its README, so the warning carries no news here.
warnings.filterwarnings("ignore", message="MariaDB is not officially supported")
warnings.filterwarnings("ignore", message="No datajoint.json found")


# The PyMySQL sessions that the link has set up (see in_link_session). DataJoint
# replaces a connection's session when it reconnects, and the new one starts
# with the server's defaults: the set tells whether to set it up again.
_LINK_SESSIONS: weakref.WeakSet[Any] = weakref.WeakSet()

_LINK_CONNECTIONS: weakref.WeakValueDictionary[int, dj.Connection] = (
    weakref.WeakValueDictionary()
)
"""The connections the link opened, by id (a Connection is not hashable)."""


def _drop_inherited_sessions() -> None:
    """In a forked child, let go of the sessions the parent opened.

    Parent and child would otherwise talk over one socket at once, and each
    would read the other's answers. The child closes its copy of the socket
    without the goodbye that would end the parent's session on the server;
    DataJoint then opens a session of its own at the child's first query
    ("Reconnecting to database server" in its log), and the link sets it up
    as after any reconnect.
    """
    for connection in list(_LINK_CONNECTIONS.values()):
        inherited = connection._conn
        if isinstance(inherited, pymysql.connections.Connection):
            inherited._force_close()
            _LINK_SESSIONS.discard(inherited)


os.register_at_fork(after_in_child=_drop_inherited_sessions)


def in_link_session(connection: dj.Connection) -> dj.Connection:
    """Return the connection with its session set up for the link.

    TIMESTAMP values are stored as instants but read and written in the
    session's time zone, which is each server's own by default: two servers
    in different zones would shift every copied timestamp. Every session of
    the link works in UTC instead. Its GROUP_CONCAT results may be as long as
    the server sends at all (max_allowed_packet), so that the copy can read a
    batch of rendered rows as one text (see LinkGateway._bundled_literals).
    Both are set again whenever DataJoint has replaced the session by
    reconnecting.
    """
    if connection._conn not in _LINK_SESSIONS:
        connection.query(
            "SET time_zone = '+00:00', group_concat_max_len = @@max_allowed_packet"
        )
        _LINK_SESSIONS.add(connection._conn)
    return connection


def read_in_link_session(
    connection: dj.Connection, sql: str, args: tuple[Any, ...] | None = None
) -> Any:
    """Run a read-only query in the link's session and return its cursor.

    DataJoint reconnects inside a query when the connection was lost, and runs
    the query again in the new session, which has the server's defaults (its
    time zone): a read that was run so is run once more, in the link's
    session. Writes are not repeated here; a guarded write run so matches no
    timestamp key and changes nothing.
    """
    cursor = in_link_session(connection).query(sql, args=args)
    if connection._conn not in _LINK_SESSIONS:
        cursor = in_link_session(connection).query(sql, args=args)
    return cursor


def split_host(host: str) -> tuple[str, int]:
    """Split "host:port" into its parts; the port defaults to 3306."""
    name, _, port = host.partition(":")
    if not name:
        raise ConfigurationError(f"The server address {host!r} has no host name.")
    try:
        return name, int(port) if port else 3306
    except ValueError:
        raise ConfigurationError(
            f"The server address {host!r} has a port that is not a number."
        ) from None


def _stores() -> dict[str, Any]:
    """Return the store specifications of the global DataJoint configuration."""
    return dict(dj.config.stores)


def open_source(host: str, settings: LinkSettings) -> dj.Instance:
    """Connect to the source server with the link's own user (LINK_USER)."""
    user, password = settings.source_credentials()
    name, port = split_host(host)
    try:
        instance = dj.Instance(
            name, user, password, port=port, safemode=False, stores=_stores()
        )
        in_link_session(instance.connection)
        _LINK_CONNECTIONS[id(instance.connection)] = instance.connection
        return instance
    except pymysql.err.OperationalError as error:
        code = error.args[0] if error.args else None
        if code == _ACCESS_DENIED:
            raise SourceError(
                f"The source server {host} refused user {user!r}:"
                " check LINK_USER and LINK_PASS."
            ) from error
        raise SourceError(
            f"The source server {host} cannot be reached: {error}"
        ) from error


def open_destination() -> dj.Instance:
    """Connect to the destination server named by DataJoint's own configuration."""
    database = dj.config.database
    if not database.user or database.password is None:
        raise ConfigurationError(
            "The destination server's credentials are not set: set DJ_USER and"
            " DJ_PASS (or database.user and database.password in datajoint.json)."
        )
    host = f"{database.host}:{database.port}"
    try:
        instance = dj.Instance(
            database.host,
            database.user,
            database.password.get_secret_value(),
            port=database.port,
            safemode=False,
            stores=_stores(),
        )
        in_link_session(instance.connection)
        _LINK_CONNECTIONS[id(instance.connection)] = instance.connection
        return instance
    except pymysql.err.OperationalError as error:
        code = error.args[0] if error.args else None
        if code == _ACCESS_DENIED:
            raise DestinationError(
                f"The destination server {host} refused user {database.user!r}:"
                " check DJ_USER and DJ_PASS."
            ) from error
        raise DestinationError(
            f"The destination server {host} cannot be reached: {error}"
        ) from error
