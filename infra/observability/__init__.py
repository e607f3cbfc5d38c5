"""Observability: logs (text or JSON, with each message's correlation and causation), Prometheus metrics,
trace context derived from message ids, and the timing of saga steps."""
