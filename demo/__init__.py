"""Contains the demonstration of a pull over Kafka (``make demo``)."""
