"""The roles a process plays: consumers, relays, the saga and its deadlines.

`saga serve` runs every role in one process; `saga serve --role R` runs one,
so the system can run as separate processes against PostgreSQL and RabbitMQ,
each worker role in as many copies as needed (competing consumers). What the
roles run is built by the composition root (`infra.bootstrap.assemble`): the
runtime starts it, supervises its loops and stops it.

The api and the relay publish for the other roles: their readiness names, in
`waiting_for`, the roles nobody runs for the queues they publish to, when the
broker can tell. They stay ready: what they send waits for those roles.

A process that listed the seed catalogue (the embedded default) is not ready
until Orders has heard every seed product, through the relay and its catalogue
queue: until then an order would be refused as naming an unknown product, so
readiness names `catalogue: ...` with how many are not heard yet.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from commands.inventory import SEED_CATALOGUE
from infra.bootstrap import Assembly
from infra.elections import deadline_leadership
from infra.messaging.consumers import CONSUMERS, CONTEXTS, idle_roles
from infra.messaging.relay import OutboxRelay
from infra.supervision import LoopPolicy, Supervisor
from projections.read_model import ReadModel
from read_api.health import Outages, merged, report, waiting

if TYPE_CHECKING:
    from process_managers.scheduler import DeadlineScheduler

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


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off for a batch job whose objects form no cycles (a rebuild's frozen rows
    and decoded JSON, freed by reference counting); on again, and run once, when the job ends.

    A rebuild keeps tens of thousands of rows alive between its writes, so each young pass
    finds its 50,000 objects still alive and traverses them all: a tenth of the rebuild's CPU.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()


class Runtime:
    """Starts the roles of an assembly (`infra.bootstrap.assemble`) on its bus, and stops them together.

    The assembly's metrics count what the roles do; their registry is what the process's `/metrics` serves.
    Every background loop it starts runs under `supervisor` (restarted when it fails, named
    by readiness when it stays down); `loops` says how (`infra.supervision.LoopPolicy`).
    """

    def __init__(self, parts: Assembly, *, loops: LoopPolicy | None = None) -> None:
        unknown = set(parts.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(sorted(unknown))}; choose from {', '.join(ROLES)}")
        self.parts = parts
        self.system = parts.system
        self.bus = parts.bus
        self.roles = parts.roles
        self.metrics = parts.metrics
        self.projector = parts.projector
        self.stopping = asyncio.Event()
        self.relays: list[OutboxRelay] = []
        self.supervisor = Supervisor(loops, on_restart=self.metrics.loop_restarted)
        self._deadlines: DeadlineScheduler | None = None
        self._outages = Outages()
        self._read_model: ReadModel | None = None
        self._heard_seed = not parts.seeded  # once heard, a product stays heard: asked until then

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
            for name, loop in self.projector.loops(self.stopping).items():
                self.supervisor.start(name, loop)
        for subscription in self.parts.subscriptions():
            await self.bus.subscribe(subscription, run=self.supervisor.start)
        if "saga" in self.roles:
            self.supervisor.start("saga deadlines", partial(self._deadline_scheduler().run, self.stopping))
        self.relays = self.parts.relays()
        for relay in self.relays:
            self.supervisor.start(f"relay {relay.app.name}", partial(relay.run, self.stopping))
        if (listen := self.parts.saves_elsewhere()) is not None:
            self.supervisor.start("save listener", listen)

    async def stop(self) -> None:
        self.stopping.set()
        await self.supervisor.stop()
        await self.bus.close()
        if self.projector is not None:
            await self.projector.close()
            self._read_model = None

    async def check(self) -> dict[str, Any]:
        """Whether the broker and every event store answer, every loop runs and, in a process that listed
        the seed catalogue, Orders has heard it, naming each that does not; `leads` names what it leads.

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
        if not self._heard_seed:
            reports.append(await asyncio.to_thread(self._seed_heard))
        if self.roles & PUBLISHING_ROLES and (roles := await self.waiting_for()) is not None:
            reports.append(waiting(roles))
        return {**merged(*reports), **({"leads": leads} if (leads := self.leads()) else {})}

    def _seed_heard(self) -> dict[str, Any]:
        """Ok once Orders has heard every seed product; else names how many it has not heard yet."""
        ids = [product.product_id for product in SEED_CATALOGUE]
        try:
            unheard = len(ids) - len(self.system.orders.catalogue(ids))
        except Exception:  # Orders' store is down: its own probe names it
            return report()
        self._heard_seed = unheard == 0
        return report([f"catalogue: Orders has not heard {unheard} of the {len(ids)} seed products yet"]
                      if unheard else [])

    def leads(self) -> list[str]:
        """What this process leads among copies of its roles (a standby leads nothing, and is ready)."""
        projector = self.projector if "projector" in self.roles else None
        held = sorted(projector.leading.held) if projector is not None else []
        return held + (["saga deadlines"] if self._deadlines is not None and self._deadlines.leads else [])

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

    def _deadline_scheduler(self) -> DeadlineScheduler:
        from process_managers.scheduler import DeadlineScheduler

        # Built once: a restart after a failure goes on from where its index had read, not from the start.
        if self._deadlines is None:
            lead = deadline_leadership(self.system.settings, self.system.sagas.name)
            self._deadlines = DeadlineScheduler(self.system.sagas, lambda: datetime.now(UTC), lead=lead)
        return self._deadlines
