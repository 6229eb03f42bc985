"""Contains the errors and warnings of the link; each names what was wrong."""

from __future__ import annotations


class LinkError(Exception):
    """Base class of every error the link raises on purpose."""


class ConfigurationError(LinkError):
    """A setting is missing or wrong."""


class SourceError(LinkError):
    """The source server or its tables cannot be used as the link needs."""


class DestinationError(LinkError):
    """The destination server or its tables cannot be used as the link needs."""


class RowsAlreadyCopiedError(DestinationError):
    """Rows of a batch reached the destination meanwhile, copied by another worker."""


class InvalidRequestError(LinkError):
    """A request cannot be carried out as written; nothing was changed."""


class NoRowsError(InvalidRequestError):
    """A pull matched no rows of the source."""


class IncompleteRequestError(LinkError):
    """Some rows of a request could not be processed; the others were.

    ``result`` holds the request's full outcome, with each failed key and why.
    """

    def __init__(self, message: str, result: object) -> None:
        """Keep the outcome with the message."""
        super().__init__(message)
        self.result = result


class RequestTimeoutError(LinkError):
    """A request was published but its completion did not arrive in time."""


class BrokerError(LinkError):
    """Kafka could not be reached or refused a message."""


class LinkWarning(UserWarning):
    """Base class of every warning the link gives."""


class AlreadySharedWarning(LinkWarning):
    """A pull met only rows that were already shared: nothing was pulled."""


class OrphanedRowsWarning(LinkWarning):
    """A deletion met rows that the source had deleted, with their helper rows.

    They were deleted from the destination as asked, and left the link.
    """


class UnsupportedVersionError(LinkError):
    """An event is of a schema version that this release of the link cannot read.

    ``request_id`` names the request it answers, when it names one.
    """

    def __init__(self, message: str, request_id: str | None) -> None:
        """Keep the request id with the message."""
        super().__init__(message)
        self.request_id = request_id
