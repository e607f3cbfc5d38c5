"""Modes a and b: every worker role on one bus in one process's event loop, a fresh process for each run."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from bench.throughput.config import WORKER_ROLES, Config
from bench.throughput.figures import figures
from bench.throughput.hops import hop_latencies
from bench.throughput.load import drive
from bench.throughput.meters import BrokerTrouble, ConnectionSampler, CpuMeter
from bench.throughput.plain import unchained
from bench.throughput.profiler import Profiler
from bench.throughput.stores import fresh_store
from bench.throughput.verify import before_run, verify
from bench.throughput.workload import stock_up
from commands.orders import PlaceOrder
from infra.affinity import keep_to_cpus, serving_cpus
from infra.bootstrap import assemble
from infra.runtime import Runtime, run_event_loop
from infra.settings import Settings


def run_in_process(mode: str, config: Config, commands: Sequence[PlaceOrder], rate: float) -> dict[str, Any]:
    """Modes a and b: every worker role on one bus in one process's event loop.

    Each run gets a fresh process of its own, as `saga serve` would be: a run in
    a process that has already run another inherits its heap (and its garbage
    collector's work), which slowed mode b by a fifth after mode a.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_run_in_this_process, mode, config, commands, rate).result()


def _run_in_this_process(
    mode: str, config: Config, commands: Sequence[PlaceOrder], rate: float
) -> dict[str, Any]:
    plain = unchained() if mode == "b0" else contextlib.nullcontext()
    with fresh_store(mode, config) as settings, plain:
        keep_to_cpus(serving_cpus(settings.cpu_affinity, every_role=True))  # as `saga serve` does
        # The loop `saga serve` runs in (uvloop where installed).
        return run_event_loop(_in_process(mode, config, settings, commands, rate))


async def _in_process(
    mode: str, config: Config, settings: Settings, commands: Sequence[PlaceOrder], rate: float
) -> dict[str, Any]:
    runtime = Runtime(assemble(settings, WORKER_ROLES, seed=False))
    system, bus = runtime.system, runtime.bus
    # The driver gets a thread of its own: the loop's default executor serves the roles.
    driver = ThreadPoolExecutor(1, thread_name_prefix="bench-driver")
    profiler = Profiler(config.profile, f"{mode}{'-paced' if rate else ''}", gil=config.profile_gil)
    try:
        await runtime.start()
        await asyncio.to_thread(stock_up, system, len(commands))
        await asyncio.sleep(1.0)  # let the relays publish the seed events before the clock starts
        before = await asyncio.to_thread(before_run, system)
        meter, connections = CpuMeter(), ConnectionSampler(settings)

        def started() -> None:
            profiler.attach({"all-roles": os.getpid()})
            meter.start()
            connections.start()

        loop = asyncio.get_running_loop()
        try:
            with BrokerTrouble() as trouble:
                timing = await loop.run_in_executor(driver, lambda: drive(
                    system, commands, placers=config.placers, rate=rate, timeout=config.timeout,
                    poll=config.poll, on_start=started,
                ))
            cpu = meter.stop()
            cpu["broker_connection_errors"] = trouble.count
            cpu["pg_connections_peak"] = connections.stop()
        finally:
            profiler.detach()
        parked = len(await bus.dead_letters())
        fails, facts = await asyncio.to_thread(verify, system, commands, before)
        facts["hops"] = await asyncio.to_thread(
            hop_latencies, system, before, {c.order_id for c in commands}
        )
    finally:
        await runtime.stop()
        system.close()
        driver.shutdown()
    return figures(mode, config, commands, rate, timing, fails, facts, cpu, parked)
