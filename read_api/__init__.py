"""The HTTP face of the system: GraphQL and the REST routes kept from the old system."""
