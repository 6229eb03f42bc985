"""Share rows of DataJoint tables between database servers, over Kafka."""

from link.decorator import link
from link.errors import AlreadySharedWarning, LinkWarning, OrphanedRowsWarning

__all__ = ["AlreadySharedWarning", "LinkWarning", "OrphanedRowsWarning", "link"]
