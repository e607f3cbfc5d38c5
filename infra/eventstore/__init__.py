"""The event store: the eventsourcing library's persistence, set up from settings (`persistence`), the
recorders we add to it, each event's hash chained to the one before (`chain`, `chain_tables`) and the
chains verified (`verification`), the DDL done under one lock, creating the database, and readiness probes."""
