"""The system's tests, in three folders; tests/conftest.py marks each test with its folder's name.

- `unit`: no I/O at all, no file, socket or child process: stores in memory (`DATABASE_URL=memory://`),
  the in-process bus, the API through an ASGI transport, the CLI through CliRunner where it reads nothing.
- `integration`: tests that use a real store or broker: PostgreSQL, RabbitMQ, and SQLite in files too
  (`sqlite_settings`, the embedded default's DATA_DIR), or that start a process or open a socket.
  A test run on both stores (`store_settings`, `stack`) belongs here.
- `e2e`: the system run as separate processes, driven over HTTP, GraphQL and AMQP.
"""
