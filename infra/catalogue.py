"""Orders hears the listings Inventory recorded before the relay published them.

Orders prices orders from a catalogue of its own: the products it heard of through
Inventory's `ProductListed` events, which the relay publishes and the orders role
consumes. A store written before listings were published holds listings the relay
will never publish: its position in Inventory's log is past them, so Orders of an
upgraded system would refuse every order. `saga migrate` hands those listings to
Orders once, through the relay's own translation and under the tracking the
consumer uses (Inventory's name and the listing's notification id), so that a
listing heard both ways is kept once.

This is an operator's migration across stores, run with every store at hand; at run
time no context reads another's.
"""

from __future__ import annotations

from typing import Protocol

from eventsourcing.persistence import Tracking

from commands.contract.messages import ProductListed
from commands.inventory import LISTED_TOPIC, Inventory
from commands.orders import Orders
from infra.messaging.relay import integration_messages

PAGE = 500


class BothContexts(Protocol):
    """Inventory and Orders, as the composition root builds them (`infra.bootstrap.System` fits)."""

    @property
    def inventory(self) -> Inventory: ...

    @property
    def orders(self) -> Orders: ...


def hear_earlier_listings(system: BothContexts) -> int:
    """Have Orders hear every listing in Inventory's log it has not heard; how many it heard now."""
    inventory, orders = system.inventory, system.orders
    heard, start = 0, 1
    while notifications := inventory.recorder.select_notifications(start, PAGE, topics=[LISTED_TOPIC]):
        for notification in notifications:
            event = inventory.mapper.to_domain_event(notification)
            for _, envelope in integration_messages(inventory.name, notification, event):
                if envelope.type == ProductListed.__name__:
                    fact = ProductListed.model_validate(envelope.payload)
                    heard += orders.hear_listing(fact, Tracking(inventory.name, notification.id))
        start = notifications[-1].id + 1
    return heard
