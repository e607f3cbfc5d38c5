"""The event store: the eventsourcing library's persistence, set up from settings (`persistence`), the
recorders we add to it, the DDL done under one lock, creating the database, and readiness probes."""
