"""Infrastructure: configuration, the eventsourcing store, NATS. Depends on the domain."""
