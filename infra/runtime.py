"""The roles a process plays: consumers, relays, the saga and its deadlines.

`saga serve` runs every role in one process; `saga serve --role R` runs one,
so the system can run as separate processes against PostgreSQL and RabbitMQ,
each worker role in as many copies as needed (competing consumers).

The api and the relay publish for the other roles: their readiness names, in
`waiting_for`, the roles nobody runs for the queues they publish to, when the
broker can tell. They stay ready: what they send waits for those roles.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Coroutine, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from commands.base import ContextApplication
from infra.bootstrap import System
from infra.messaging.bus import Bus
from infra.messaging.consumers import (
    CONSUMERS,
    CONTEXTS,
    command_subscription,
    event_subscription,
    idle_roles,
)
from infra.messaging.leadership import AdvisoryLockLeadership, Leadership, SoleLeader
from infra.messaging.relay import FromStoredState, OutboxRelay, Translate, integration_messages, saga_commands
from infra.observability.metrics import SagaMetrics
from infra.readstore.opening import read_store_opener, save_listener
from infra.settings import Settings
from infra.supervision import LoopPolicy, Supervisor
from projections.read_model import ReadModel
from projections.runner import Projector
from projections.waiting import wait_until_set
from read_api.health import Outages, merged, report, waiting

if TYPE_CHECKING:
    from process_managers.deadlines import DeadlineIndex

T = TypeVar("T")

CONTEXT_ROLES = CONTEXTS
ROLES = ("api", *CONTEXT_ROLES, "saga", "relay", "projector")
PUBLISHING_ROLES = frozenset({"api", "relay"})  # their readiness names the roles nobody runs
# The old services' ports, and the next ones for the roles the old system did not have, so that
# every role can run on one host beside the api (8000) without a --port.
WORKER_PORTS = {"orders": 8001, "payments": 8002, "inventory": 8003, "shipping": 8004,
                "notifications": 8005, "saga": 8006, "relay": 8007, "projector": 8008}


GC_YOUNG_THRESHOLD = 50_000


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a long-lived process's event loop: uvloop where it is installed, else asyncio's own.

    A process that runs the roles spends much of its single core in the loop
    itself (AMQP frames, thread hand-offs); uvloop's loop costs less of it.

    Every message makes thousands of short-lived objects (pydantic models,
    rows, frames) that reference counting frees; the cycle collector's default
    of a young-generation pass every 700 allocations then costs about a sixth
    of the process's CPU for nothing. What the process built to start (modules,
    settings) is frozen out of the collector, and the young generation is
    collected every GC_YOUNG_THRESHOLD allocations.
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def make_bus(settings: Settings) -> Bus:
    """RabbitMQ when AMQP_URL is set, else the in-process bus, its queues in DATA_DIR/bus.sqlite.

    With DATABASE_URL=memory:// the in-process bus keeps its queues in memory too.
    """
    if settings.amqp_url:
        from infra.messaging.rabbitmq import RabbitBus

        # Every consumer queue: `saga dlq list` without a queue lists them all, `saga migrate`
        # declares them, and readiness counts their consumers.
        topology = list(CONSUMERS.values())
        return RabbitBus(settings.amqp_url, namespace=settings.bus_namespace, topology=topology)
    from infra.messaging.in_process import InProcessBus

    if settings.is_in_memory:
        return InProcessBus()
    return InProcessBus(settings.data_dir / "bus.sqlite")


class Runtime:
    """Starts the chosen roles on one bus and stops them together.

    `metrics` counts what the roles do; its registry is what the process's `/metrics` serves.
    Every background loop it starts runs under `supervisor` (restarted when it fails, named
    by readiness when it stays down); `loops` says how (`infra.supervision.LoopPolicy`).
    """

    def __init__(
        self, system: System, bus: Bus, roles: Iterable[str], *, metrics: SagaMetrics | None = None,
        loops: LoopPolicy | None = None,
    ) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(sorted(unknown))}; choose from {', '.join(ROLES)}")
        self.system = system
        self.bus = bus
        self.roles = frozenset(roles)
        self.metrics = metrics or SagaMetrics()
        self.stopping = asyncio.Event()
        self.relays: list[OutboxRelay] = []
        self.supervisor = Supervisor(loops, on_restart=self.metrics.loop_restarted)
        self._deadlines: DeadlineIndex | None = None
        self._outages = Outages()
        # The API answers queries from the read store; the projector role keeps it up to date.
        self.projector: Projector | None = None
        self._read_model: ReadModel | None = None
        if self.roles & {"api", "projector"}:
            settings = system.settings
            self.projector = Projector(
                system, store=read_store_opener(settings), listen=save_listener(settings), bus=bus,
            )

    async def open_read_side(self) -> ReadModel | None:
        """Open the read store (creating its tables) and return its queries; None without one."""
        if self.projector is None:
            return None
        if self._read_model is None:
            await self.projector.start()
            self._read_model = self.projector.read_model()
        return self._read_model

    @asynccontextmanager
    async def lifespan(self, _: object = None) -> AsyncIterator[None]:
        """Run the roles for as long as the web server serves (its lifespan).

        The server stops on SIGTERM or SIGINT after its lifespan has ended, so the
        consumers finish their batches, the bus closes and the stores are let go.
        A start that fails part way (the broker does not answer) lets go of what
        it had opened too, so the process can end.
        """
        try:
            await self.start()
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        await self.bus.start()
        if "projector" in self.roles and self.projector is not None:
            await self.open_read_side()
            self.metrics.watch_projections(self.projector, asyncio.get_running_loop())
            self.supervisor.start("projector", partial(self.projector.run, self.stopping))
        for role in CONTEXT_ROLES:
            if role in self.roles:
                app = getattr(self.system, role)
                await self.bus.subscribe(self.metrics.instrumented(command_subscription(app, role)))
        if "saga" in self.roles:
            sagas = self.system.sagas
            await self.bus.subscribe(self.metrics.instrumented(event_subscription(sagas, sagas)))
            self.supervisor.start("saga deadlines", self._fire_deadlines)
        if "relay" in self.roles:
            outboxes: list[tuple[ContextApplication, Translate]] = [
                (app, integration_messages) for app in self.system.contexts
            ]
            # The saga's relay reads each step's request and outcome on its way: it times the steps.
            timed = FromStoredState(self.metrics.timing_steps(saga_commands.translate))
            outboxes.append((self.system.sagas, timed))
            for app, translate in outboxes:
                relay = OutboxRelay(app, self.bus, translate, leadership=self._leadership(app.name),
                                    metrics=self.metrics)
                self.metrics.watch_lag(app.name, relay)
                self.relays.append(relay)
            for relay in self.relays:
                self.supervisor.start(f"relay {relay.app.name}", partial(relay.run, self.stopping))

    async def stop(self) -> None:
        self.stopping.set()
        await self.supervisor.stop()
        await self.bus.close()
        if self.projector is not None:
            await self.projector.close()
            self._read_model = None

    async def check(self) -> dict[str, Any]:
        """Whether the broker and every event store answer, and every loop runs, naming each that does not.

        For health probes: a loop counts as down once it has failed for the supervisor's grace period.

        The api's and the relay's add `waiting_for` when the broker can tell: see the module docstring.
        """
        if await self.bus.healthy():
            self._outages.answered("broker")
            broker = report()
        else:
            self._outages.failed("broker")
            broker = report(["broker"])
        reports = [broker, await asyncio.to_thread(self.system.check), self.supervisor.check()]
        if self.roles & PUBLISHING_ROLES and (roles := await self.waiting_for()) is not None:
            reports.append(waiting(roles))
        return merged(*reports)

    async def waiting_for(self) -> list[str] | None:
        """The roles nobody runs, by their queues' consumers and what the relays could not publish.

        None when neither the bus nor the relays can tell.
        """
        counts = await self.bus.consumer_counts()
        unroutable = {role for relay in self.relays for role in relay.waiting_for}
        if counts is None and not unroutable:
            return None
        idle = set(idle_roles(counts or {}))
        return [role for role in CONSUMERS if role in idle | unroutable]

    def _leadership(self, app_name: str) -> Leadership:
        dsn = self.system.settings.postgres
        if dsn is None:
            return SoleLeader()
        return AdvisoryLockLeadership(dsn, f"relay:{dsn.schema_name or 'public'}:{app_name}")

    async def _fire_deadlines(self, every: float = 1.0) -> None:
        from process_managers.deadlines import DeadlineIndex, fire_due

        # Built once: a restart after a failure goes on from where the index had read, not from the start.
        if self._deadlines is None:
            self._deadlines = await asyncio.to_thread(DeadlineIndex, self.system.sagas)
        index = self._deadlines
        while not self.stopping.is_set():
            await asyncio.to_thread(fire_due, self.system.sagas, index, datetime.now(UTC))
            await wait_until_set(self.stopping, every)
