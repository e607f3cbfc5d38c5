"""One supervisor for every background loop of a process: nothing runs bare.

A loop (a relay, the deadline scheduler, the projector) is a coroutine factory.
Whatever it raises, short of a cancellation, restarts it after a backoff that
doubles with each failure, with jitter so that copies do not retry in step, up
to a cap; a loop that then runs for `steady` seconds counts as well again, and
its backoff starts over. Each restart is one WARNING naming the loop and the
error; the traceback is logged with the first of each distinct error.

Readiness names a loop that has been failing for longer than `grace` seconds
("loop: relay Payments"), until it has run well again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from projections.waiting import cancel_until_done
from read_api.health import report

log = logging.getLogger(__name__)

Loop = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class LoopPolicy:
    """How loops are restarted and when one counts as down (seconds)."""

    first: float = 0.5
    cap: float = 30.0
    steady: float = 10.0
    grace: float = 30.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        """The wait before the next start after `failures` failures in a row: half to all of the doubling."""
        ceiling = min(self.cap, self.first * 2.0 ** (failures - 1))
        return ceiling * (0.5 + rng.random() / 2)


@dataclass
class LoopState:
    """What the supervisor knows of one loop."""

    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    restarting_since: datetime | None = None
    """When the loop's current run of failures began; None while it runs well."""
    failures: int = 0
    _started: float = 0.0
    _failing_since: float | None = None
    _last_signature: tuple[str, str] | None = field(default=None, repr=False)


class Supervisor:
    """Runs named loops, restarts each one that fails, and says which have been down too long."""

    def __init__(
        self,
        policy: LoopPolicy | None = None,
        *,
        on_restart: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or LoopPolicy()
        self.on_restart = on_restart
        self._clock = clock
        self._rng = rng or random.Random()
        self._loops: dict[str, LoopState] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, loop: Loop) -> None:
        """Run `loop()` under supervision until it returns or the supervisor stops."""
        if name in self._loops:
            raise ValueError(f"a loop named {name!r} is already supervised")
        state = self._loops[name] = LoopState(name)
        self._tasks.append(asyncio.create_task(self._supervise(state, loop), name=f"loop: {name}"))

    async def stop(self) -> None:
        """Cancel every loop and wait for each to end."""
        tasks, self._tasks = self._tasks, []
        await cancel_until_done(tasks)

    def states(self) -> list[LoopState]:
        for state in self._loops.values():
            self._settle(state)
        return list(self._loops.values())

    def down(self) -> list[str]:
        """The loops that have been failing for longer than the grace period."""
        now = self._clock()
        return [
            state.name for state in self.states()
            if state._failing_since is not None and now - state._failing_since >= self.policy.grace
        ]

    def check(self) -> dict[str, Any]:
        """A readiness report naming each loop down ("loop: relay Payments")."""
        return report(f"loop: {name}" for name in self.down())

    async def _supervise(self, state: LoopState, loop: Loop) -> None:
        while True:
            state.running, state._started = True, self._clock()
            try:
                await loop()
            except Exception as error:
                delay = self._failed(state, error)
            else:
                state.running = False
                return
            await asyncio.sleep(delay)

    def _failed(self, state: LoopState, error: Exception) -> float:
        self._settle(state)
        state.running = False
        state.failures += 1
        state.restarts += 1
        state.last_error = type(error).__name__
        if state._failing_since is None:
            state._failing_since, state.restarting_since = self._clock(), datetime.now(UTC)
        delay = self.policy.backoff(state.failures, self._rng)
        signature = (type(error).__name__, str(error))
        first_of_its_kind = signature != state._last_signature
        state._last_signature = signature
        log.warning("loop %s failed (%s: %s); restart %d in %.1f s", state.name, *signature,
                    state.restarts, delay, exc_info=error if first_of_its_kind else None)
        if not first_of_its_kind:
            log.debug("loop %s failed", state.name, exc_info=error)
        if self.on_restart is not None:
            self.on_restart(state.name)
        return delay

    def _settle(self, state: LoopState) -> None:
        """A loop that has run well for `steady` seconds starts its backoff over and is no longer down."""
        if state.running and self._clock() - state._started >= self.policy.steady:
            state.failures, state._failing_since, state.restarting_since = 0, None, None
