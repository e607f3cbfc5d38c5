"""Messaging: the `Bus` port (`bus`) beside its adapters (`rabbitmq`, and `in_process`, a durable queue in
one SQLite file), the outbox relay that publishes each application's log, the consumers that handle each
queue exactly once, and the leadership that lets one relay of an application publish at a time."""
