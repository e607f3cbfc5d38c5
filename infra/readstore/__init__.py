"""The read store the projections write and the API reads: asyncpg on PostgreSQL, aiosqlite on the
embedded default; opening it from settings, the news of saves that wakes the projector, and the
rebuild shared out over processes."""
