"""One place that builds the system from settings.

Tests pass fakes as overrides (`bootstrap(settings, gateway=AlwaysDecline())`);
nothing else in the code base constructs applications or adapters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from commands.base import ContextApplication
from commands.inventory import Inventory
from commands.notifications import Notifications
from commands.orders import Orders
from commands.payments import Payments
from commands.shipping import Shipping
from commands.simulation import (
    FailureSimulator,
    SimulatedCarrier,
    SimulatedGateway,
    SimulatedNotifier,
)
from infra.persistence import application_env
from infra.settings import Settings
from process_managers.application import Sagas, utc_now


@dataclass
class System:
    """Every bounded context's application, built from one set of settings."""

    settings: Settings
    orders: Orders
    payments: Payments
    inventory: Inventory
    shipping: Shipping
    notifications: Notifications
    sagas: Sagas

    @property
    def contexts(self) -> tuple[ContextApplication, ...]:
        """The bounded contexts' applications, without the saga."""
        return (self.orders, self.payments, self.inventory, self.shipping, self.notifications)

    @property
    def applications(self) -> tuple[ContextApplication, ...]:
        return (*self.contexts, self.sagas)

    def __iter__(self) -> Iterator[ContextApplication]:
        return iter(self.applications)

    def check(self) -> dict[str, str]:
        """Whether every event store answers; for readiness probes."""
        try:
            for application in self.applications:
                application.recorder.max_notification_id()
        except Exception as error:
            return {"status": "unavailable", "error": str(error)}
        return {"status": "ok"}

    def close(self) -> None:
        for app in self.applications:
            app.close()

    def __enter__(self) -> System:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def bootstrap(settings: Settings | None = None, **overrides: Any) -> System:
    """Build the system. Overrides: `gateway`, `carrier`, `notifier`, `clock`."""
    settings = settings or Settings()
    seed = settings.failure_seed

    def env(name: str) -> dict[str, str]:
        return application_env(settings, name)

    inventory = Inventory(env(Inventory.name))
    system = System(
        settings=settings,
        orders=Orders(env(Orders.name), catalogue=inventory.catalogue),
        payments=Payments(
            env(Payments.name),
            gateway=overrides.get("gateway")
            or SimulatedGateway(FailureSimulator(settings.payment_failure_rate, seed)),
        ),
        inventory=inventory,
        shipping=Shipping(
            env(Shipping.name),
            carrier=overrides.get("carrier")
            or SimulatedCarrier(FailureSimulator(settings.shipping_failure_rate, seed)),
        ),
        notifications=Notifications(
            env(Notifications.name),
            notifier=overrides.get("notifier")
            or SimulatedNotifier(FailureSimulator(settings.notification_failure_rate, seed)),
        ),
        sagas=Sagas(
            env(Sagas.name),
            step_timeout=timedelta(seconds=settings.step_timeout_seconds),
            clock=overrides.get("clock") or utc_now,
        ),
    )
    return system


APPLICATION_NAMES = ("Orders", "Payments", "Inventory", "Shipping", "Notifications", "OrderFulfillment")


def migrate(settings: Settings) -> list[str]:
    """Create every table once. Services then run with CREATE_TABLE=n, so replicas never race."""
    dsn = settings.postgres
    if dsn is not None and dsn.schema_name:
        with psycopg.connect(dsn.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(dsn.schema_name))
            )
    creating = settings.model_copy(update={"create_table": True})
    with bootstrap(creating):
        pass
    return list(APPLICATION_NAMES)
