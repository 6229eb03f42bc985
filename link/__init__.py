"""Share rows of DataJoint tables between database servers, over Kafka."""

from link.decorator import link

__all__ = ["link"]
