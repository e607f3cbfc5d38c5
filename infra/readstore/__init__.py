"""The read store the projections write and the API reads: asyncpg on PostgreSQL, aiosqlite on the
embedded default, and opening it from settings."""
