"""The integration contract: the versioned messages that cross the bus between contexts (`messages`) and
the translation of each context's domain events into them (`translation`)."""
