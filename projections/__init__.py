"""Read models built from events.

`read_model` is the interface the API reads. Each question has a module holding
a pure `evolve(row, fact) -> row` and its projection class (`order_summary`,
`stock_levels`, `payment_status`, `shipment_tracking`, `notification_log`,
`saga_progress`); `dead_letters` copies the bus's parked messages instead.
`runner.Projector` follows the event stores into the read store (`store`), one
transaction per batch with its tracking position; `rebuild` replays a projection
into new tables and swaps them in. Nothing here opens a database or talks to a
terminal: `infra` opens the read store the settings choose and hands it in, and
offers rebuild and status on the command line.
"""
