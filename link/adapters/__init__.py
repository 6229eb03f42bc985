"""Contains the adapters between the link and its servers: databases and Kafka."""
