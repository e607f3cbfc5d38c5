"""Stored event topics are a contract with every event already written.

An event's topic (module and class name) is stored with it. Renaming or moving an
aggregate, an event or a snapshot class would leave the stored ones unreadable, so
this list is pinned: change it only together with an upcaster or a
`register_topic` alias for the old name.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

import domain
from domain.base import Aggregate

PINNED_TOPICS = {
    "domain.notification:Notification",
    "domain.notification:Notification.Created",
    "domain.notification:Notification.Event",
    "domain.notification:Notification.Failed",
    "domain.notification:Notification.Sent",
    "domain.order:Order",
    "domain.order:Order.CancellationRequested",
    "domain.order:Order.Cancelled",
    "domain.order:Order.Completed",
    "domain.order:Order.Created",
    "domain.order:Order.Event",
    "domain.order:Order.PersonalDataErased",
    "domain.order:Order.Placed",
    "domain.privacy:Forgetting",
    "domain.privacy:Forgetting.Created",
    "domain.privacy:Forgetting.Event",
    "domain.privacy:Forgetting.Recorded",
    "domain.privacy:Forgetting.Repeated",
    "domain.product:Product",
    "domain.product:Product.Created",
    "domain.product:Product.Event",
    "domain.product:Product.Heard",
    "domain.payment:Payment",
    "domain.payment:Payment.Charged",
    "domain.payment:Payment.Created",
    "domain.payment:Payment.Declined",
    "domain.payment:Payment.Event",
    "domain.payment:Payment.Refunded",
    "domain.payment:Payment.Voided",
    "domain.reservation:Reservation",
    "domain.reservation:Reservation.Committed",
    "domain.reservation:Reservation.Created",
    "domain.reservation:Reservation.Event",
    "domain.reservation:Reservation.Opened",
    "domain.reservation:Reservation.Rejected",
    "domain.reservation:Reservation.Released",
    "domain.reservation:Reservation.ReleasedBeforeReserved",
    "domain.reservation:Reservation.Reserved",
    "domain.shipment:Shipment",
    "domain.shipment:Shipment.Cancelled",
    "domain.shipment:Shipment.Created",
    "domain.shipment:Shipment.Delivered",
    "domain.shipment:Shipment.Dispatched",
    "domain.shipment:Shipment.Event",
    "domain.shipment:Shipment.Failed",
    "domain.stock:Stock",
    "domain.stock:Stock.Created",
    "domain.stock:Stock.Event",
    "domain.stock:Stock.Listed",
    "domain.stock:Stock.Released",
    "domain.stock:Stock.Reserved",
    "domain.stock:Stock.Restocked",
    "domain.stock:Stock.Snapshot",
    "domain.stock:Stock.Sold",
}


def topics_in_the_domain() -> set[str]:
    found = set()
    for module_info in pkgutil.iter_modules(domain.__path__):
        module = importlib.import_module(f"domain.{module_info.name}")
        for aggregate in vars(module).values():
            if not (inspect.isclass(aggregate) and issubclass(aggregate, Aggregate)):
                continue
            if aggregate.__module__ != module.__name__ or aggregate is Aggregate:
                continue
            found.add(get_topic(aggregate))
            found |= {
                get_topic(member)
                for member in vars(aggregate).values()
                if inspect.isclass(member) and issubclass(member, BaseModel)
            }
    return found


def test_the_stored_topics_are_exactly_the_pinned_ones() -> None:
    found = topics_in_the_domain()
    assert found - PINNED_TOPICS == set(), "new topics: pin them"
    assert PINNED_TOPICS - found == set(), "pinned topics vanished: stored events would be orphaned"


def test_every_pinned_topic_still_resolves_to_its_class() -> None:
    for topic in PINNED_TOPICS:
        assert get_topic(resolve_topic(topic)) == topic
