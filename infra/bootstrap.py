"""The composition root: the one place that builds the system from settings.

`assemble(settings, roles)` builds everything a process runs: the applications,
the bus, each consumer role's subscription, the relays with their leadership,
the projector with its read store, and the seed catalogue of the embedded
default; `infra.runtime.Runtime` then only starts, supervises and stops it.
`bootstrap(settings)` builds the applications alone, for commands and tests
that need nothing else. Tests pass fakes as overrides
(`bootstrap(settings, gateway=AlwaysDecline())`); nothing else in the code base
constructs applications or adapters.

    runtime = Runtime(assemble(settings, ("payments", "relay")))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from infra.catalogue import hear_earlier_listings
from infra.elections import projection_leads
from infra.eventstore.ddl import create_schema
from infra.eventstore.every_store import EveryStoresKeys
from infra.eventstore.persistence import PydanticMapper, application_env
from infra.eventstore.privacy import PersonalDataKeys, personal_data_keys
from infra.eventstore.probes import StoreProbe
from infra.messaging.bus import Bus, Subscription
from infra.messaging.consumers import CONTEXTS, TOPOLOGY, command_subscription, event_subscription
from infra.messaging.consumers import catalogue_subscription as catalogue_of
from infra.messaging.leadership import AdvisoryLockLeadership, Leadership, SoleLeader
from infra.messaging.relay import FromStoredState, OutboxRelay, Translate, integration_messages, saga_commands
from infra.observability.metrics import SagaMetrics
from infra.readstore.opening import read_store_opener
from infra.settings import Settings
from infra.supervision import Loop
from process_managers.application import Sagas, utc_now
from process_managers.compensation_retries import Retries
from projections.runner import Projector

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
        self._keepers: dict[str, PersonalDataKeys] = {}

    @property
    def personal_data(self) -> EveryStoresKeys | None:
        """The customers' data keys in every event store; None with PERSONAL_DATA_ENCRYPTION=false."""
        if not self.settings.personal_data_encryption:
            return None
        return EveryStoresKeys([
            keys for app in self.applications if (keys := getattr(app.mapper, "personal", None)) is not None
        ])

    @property
    def orders(self) -> Orders:
        return self._app(Orders.name, Orders)  # its catalogue is its own, fed by Inventory's listings

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
        s = self.settings
        timeout, clock = timedelta(seconds=s.step_timeout_seconds), self._overrides.get("clock") or utc_now
        retries = Retries(s.compensation_attempts, timedelta(seconds=s.compensation_backoff_seconds))
        return self._app(Sagas.name, lambda e: Sagas(e, step_timeout=timeout, clock=clock, retries=retries))

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
                built = build(application_env(self.settings, name))
                if isinstance(built.mapper, PydanticMapper) and self.settings.personal_data_encryption:
                    built.mapper.personal = built.recorder.personal = self._keeper(built)  # type: ignore[attr-defined]
                self._built[name] = built
            app = self._built[name]
        return app  # type: ignore[return-value]

    def _keeper(self, app: ContextApplication) -> PersonalDataKeys:
        """One keeper per key table: one per PostgreSQL database and schema; one per embedded file."""
        where = self.settings.database_of(app.name)
        name = f"{where.url}?schema={where.schema_name}" if where is not None else app.name
        if name not in self._keepers:
            self._keepers[name] = personal_data_keys(app.recorder.key_table, self.settings)  # type: ignore[attr-defined]
        return self._keepers[name]

    def _built_now(self) -> list[ContextApplication]:
        with self._lock:
            return list(self._built.values())

    def _failures(self, kind: str) -> FailureSimulator:
        rate = getattr(self.settings, f"{kind}_failure_rate")
        return FailureSimulator(rate, self.settings.failure_seed)


def bootstrap(settings: Settings | None = None, **overrides: Any) -> System:
    """Build the applications. Overrides: `gateway`, `carrier`, `notifier`, `clock`."""
    return System(settings or Settings(), overrides)


class Assembly:
    """Everything one process runs for its roles, built from settings by `assemble`.

    The projector is built at once, for the api or the projector role; the subscriptions and
    the relays when the runtime starts them, so their applications' stores open only then.
    """

    def __init__(self, system: System, bus: Bus, roles: Iterable[str], metrics: SagaMetrics, *,
                 seeded: bool = False) -> None:
        self.system = system
        self.bus = bus
        self.roles = frozenset(roles)
        self.metrics = metrics
        self.seeded = seeded  # it listed the seed catalogue: ready once Orders has heard it
        # The API answers queries from the read store; the projector role keeps it up to date.
        self.projector = projector(system, bus=bus, elect=True) if self.roles & {"api", "projector"} else None

    def subscriptions(self) -> list[Subscription]:
        """What each consumer role among the roles takes from the bus, its verdicts counted."""
        taken = [command_subscription(getattr(self.system, role), role)
                 for role in CONTEXTS if role in self.roles]
        if "orders" in self.roles:
            taken.append(catalogue_of(self.system.orders, self.system.orders))
        if "saga" in self.roles:
            taken.append(event_subscription(self.system.sagas, self.system.sagas))
        return [self.metrics.instrumented(subscription) for subscription in taken]

    def relays(self) -> list[OutboxRelay]:
        """With the relay role, one relay per application's outbox, each with its leadership."""
        if "relay" not in self.roles:
            return []
        outboxes: list[tuple[ContextApplication, Translate]] = [
            (app, integration_messages) for app in self.system.contexts
        ]
        # The saga's relay reads each step's request and outcome on its way: it times the steps.
        timed = FromStoredState(self.metrics.timing_steps(saga_commands.translate))
        outboxes.append((self.system.sagas, timed))
        relays = []
        for app, translate in outboxes:
            relay = OutboxRelay(app, self.bus, translate, leadership=self._leadership(app.name),
                                metrics=self.metrics)
            self.metrics.watch_lag(app.name, relay)
            relays.append(relay)
        return relays

    def saves_elsewhere(self) -> Loop | None:
        """With the relay or projector role on PostgreSQL: the loop that wakes their followers when
        another process saves (the event store's NOTIFY). None otherwise: followers poll."""
        if not self.roles & {"relay", "projector"} or self.system.settings.is_embedded:
            return None
        from infra.eventstore.save_listener import saves_elsewhere  # asyncpg: only where it is needed

        return saves_elsewhere(self.system.settings, self.system.applications)

    def _leadership(self, app_name: str) -> Leadership:
        dsn = self.system.settings.database_of(app_name)  # the lock lives beside the events it guards
        if dsn is None:
            return SoleLeader()
        return AdvisoryLockLeadership(dsn, f"relay:{dsn.schema_name or 'public'}:{app_name}")


def assemble(
    settings: Settings | None, roles: Iterable[str], *, system: System | None = None, bus: Bus | None = None,
    metrics: SagaMetrics | None = None, seed: bool | None = None, **overrides: Any,
) -> Assembly:
    """Build what a process needs for its roles; the parts not given are built from the settings.

    `seed` lists the seed catalogue first; by default on the embedded default only, whose
    first start needs no setup. Other overrides go to `bootstrap`.
    """
    if system is None:
        system = bootstrap(settings, **overrides)
    seeded = bool(seed or (seed is None and system.settings.is_embedded))
    if seeded:
        system.inventory.seed()
    bus = make_bus(system.settings) if bus is None else bus
    metrics = SagaMetrics() if metrics is None else metrics
    metrics.count_retries()
    return Assembly(system, bus, roles, metrics, seeded=seeded)


def make_bus(settings: Settings) -> Bus:
    """RabbitMQ when AMQP_URL is set, else the in-process bus, its queues in DATA_DIR/bus.sqlite.

    With DATABASE_URL=memory:// the in-process bus keeps its queues in memory too.
    """
    if settings.amqp_url:
        from infra.messaging.rabbitmq import RabbitBus

        # Every consumer queue: `saga dlq list` without a queue lists them all, `saga migrate`
        # declares them, and readiness counts their consumers.
        topology = list(TOPOLOGY)
        return RabbitBus(settings.amqp_url, namespace=settings.bus_namespace, topology=topology,
                         queue_type=settings.queue_type)
    from infra.messaging.in_process import InProcessBus

    if settings.is_in_memory:
        return InProcessBus()
    return InProcessBus(settings.data_dir / "bus.sqlite")


def projector(system: System, *, bus: Bus | None = None, elect: bool = False) -> Projector:
    """A projector over the read store the settings choose; with `elect`, one copy of several running.

    Given the bus, it lists the bus's parked messages too. Without, it only replays (`saga projections`).
    """
    leads = projection_leads(system.settings) if elect else None  # it applies what it leads
    return Projector(system, store=read_store_opener(system.settings), bus=bus, leads=leads)


APPLICATION_NAMES = ("Orders", "Payments", "Inventory", "Shipping", "Notifications", "OrderFulfillment")


def migrate(settings: Settings) -> list[str]:
    """Create every table once, in each context's database. Services then run with CREATE_TABLE=n."""
    for database in settings.databases:
        create_schema(database)
    creating = settings.model_copy(update={"create_table": True})
    with bootstrap(creating) as system:
        system.applications  # noqa: B018 - building each application creates its tables
        hear_earlier_listings(system)
    return list(APPLICATION_NAMES)
