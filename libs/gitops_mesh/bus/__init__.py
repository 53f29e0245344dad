"""The event bus: CloudEvents over Kafka between the controllers (see shared DESIGN.md)."""
