"""Command messages and the applications that handle them, one per bounded context."""
