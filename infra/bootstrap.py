"""One place that builds the system from settings.

Tests pass fakes as overrides (`bootstrap(settings, gateway=AlwaysDecline())`);
nothing else in the code base constructs applications or adapters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any, TypeVar

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
from infra.eventstore.ddl import create_schema
from infra.eventstore.persistence import application_env
from infra.eventstore.probes import StoreProbe
from infra.settings import Settings
from process_managers.application import Sagas, utc_now

A = TypeVar("A", bound=ContextApplication)


class System:
    """Every bounded context's application, built from one set of settings.

    Each application is built when first used, so a process that plays one role
    opens connections for the stores it needs and no others.
    """

    def __init__(self, settings: Settings, overrides: Mapping[str, Any]) -> None:
        self.settings = settings
        self._overrides = overrides
        self._built: dict[str, ContextApplication] = {}
        self._lock = threading.RLock()
        self._probe = StoreProbe()

    @property
    def orders(self) -> Orders:
        return self._app(Orders.name, lambda env: Orders(env, catalogue=self.inventory.catalogue))

    @property
    def payments(self) -> Payments:
        return self._app(Payments.name, lambda env: Payments(
            env, gateway=self._overrides.get("gateway") or SimulatedGateway(self._failures("payment"))
        ))

    @property
    def inventory(self) -> Inventory:
        return self._app(Inventory.name, Inventory)

    @property
    def shipping(self) -> Shipping:
        return self._app(Shipping.name, lambda env: Shipping(
            env, carrier=self._overrides.get("carrier") or SimulatedCarrier(self._failures("shipping"))
        ))

    @property
    def notifications(self) -> Notifications:
        return self._app(Notifications.name, lambda env: Notifications(
            env, notifier=self._overrides.get("notifier") or SimulatedNotifier(self._failures("notification"))
        ))

    @property
    def sagas(self) -> Sagas:
        timeout = timedelta(seconds=self.settings.step_timeout_seconds)
        clock = self._overrides.get("clock") or utc_now
        return self._app(Sagas.name, lambda env: Sagas(env, step_timeout=timeout, clock=clock))

    @property
    def contexts(self) -> tuple[ContextApplication, ...]:
        """The bounded contexts' applications, without the saga."""
        return (self.orders, self.payments, self.inventory, self.shipping, self.notifications)

    @property
    def applications(self) -> tuple[ContextApplication, ...]:
        return (*self.contexts, self.sagas)

    def __iter__(self) -> Iterator[ContextApplication]:
        return iter(self.applications)

    def check(self) -> dict[str, Any]:
        """Whether the event stores this process uses answer; for readiness probes.

        Names each store that does not ("event store: Payments"), within seconds even when a
        database does not answer at all; why it does not goes to the log.
        """
        return self._probe.check(self._built_now())

    def close(self) -> None:
        for app in self._built_now():
            app.close()

    def __enter__(self) -> System:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _app(self, name: str, build: Callable[[dict[str, str]], A]) -> A:
        with self._lock:
            if name not in self._built:
                self._built[name] = build(application_env(self.settings, name))
            app = self._built[name]
        return app  # type: ignore[return-value]

    def _built_now(self) -> list[ContextApplication]:
        with self._lock:
            return list(self._built.values())

    def _failures(self, kind: str) -> FailureSimulator:
        rate = getattr(self.settings, f"{kind}_failure_rate")
        return FailureSimulator(rate, self.settings.failure_seed)


def bootstrap(settings: Settings | None = None, **overrides: Any) -> System:
    """Build the system. Overrides: `gateway`, `carrier`, `notifier`, `clock`."""
    return System(settings or Settings(), overrides)


APPLICATION_NAMES = ("Orders", "Payments", "Inventory", "Shipping", "Notifications", "OrderFulfillment")


def migrate(settings: Settings) -> list[str]:
    """Create every table once. Services then run with CREATE_TABLE=n, so replicas never race."""
    if settings.postgres is not None:
        create_schema(settings.postgres)
    creating = settings.model_copy(update={"create_table": True})
    with bootstrap(creating) as system:
        system.applications  # noqa: B018 - building each application creates its tables
    return list(APPLICATION_NAMES)
