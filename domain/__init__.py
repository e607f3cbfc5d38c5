"""The domain model: aggregates, their events, value objects and domain errors. Pure: no I/O."""
