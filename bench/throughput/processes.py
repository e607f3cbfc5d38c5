"""Modes c and d: each role its own `python -m infra.cli serve --role R` process on PostgreSQL + RabbitMQ,
started after one `migrate`, stopped after the run; orders placed from the bench process. Mode d's
processes find each context's database, and the cluster's nodes, in their environment."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.throughput.config import CONTEXT_DATABASES, FAILURE_RATES, QUEUES, WORKER_ROLES, Config, RunFailed
from bench.throughput.figures import figures
from bench.throughput.hops import hop_latencies
from bench.throughput.load import drive
from bench.throughput.meters import BrokerTrouble, ConnectionSampler, CpuMeter, broker_trouble_in_logs
from bench.throughput.profiler import Profiler
from bench.throughput.stores import fresh_store
from bench.throughput.verify import before_run, verify
from bench.throughput.workload import stock_up
from commands.orders import PlaceOrder
from infra.bootstrap import System, bootstrap
from infra.messaging.bus import Bus
from infra.messaging.rabbitmq import RabbitBus
from infra.settings import Settings


@dataclass
class Worker:
    role: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path


def run_processes(
    config: Config, commands: Sequence[PlaceOrder], rate: float, mode: str = "c"
) -> dict[str, Any]:
    """Mode c or d: one process per role, orders placed from here."""
    scratch = tempfile.TemporaryDirectory(prefix=f"bench_saga_{mode}_")
    with fresh_store(mode, config) as settings, scratch as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DB_", "RABBITMQ_")) and not k.endswith("DATABASE_URL")}
        env.update({
            **stores_environment(settings),
            "BUS_NAMESPACE": settings.bus_namespace,
            "FAILURE_SEED": str(config.failure_seed),
            **{name.upper(): str(value) for name, value in FAILURE_RATES.items()},
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        })
        if config.worker_pool_size is not None:
            env["POSTGRES_POOL_SIZE"] = str(config.worker_pool_size)
        migrated = subprocess.run(
            [sys.executable, "-m", "infra.cli", "migrate"], env=env, cwd=work,
            capture_output=True, text=True, timeout=180, check=False,
        )
        if migrated.returncode != 0:
            raise RunFailed(f"migrate failed: {migrated.stderr[-2000:]}")
        env["CREATE_TABLE"] = "n"
        bench_settings = settings.model_copy(update={"create_table": False})
        if config.worker_pool_size is not None:
            bench_settings = bench_settings.model_copy(update={"postgres_pool_size": config.worker_pool_size})
        system = bootstrap(bench_settings)
        workers: list[Worker] = []
        try:
            stock_up(system, len(commands))
            for role in WORKER_ROLES:
                port = free_port()
                log_path = work / f"{role}.log"
                with open(log_path, "wb") as log_file:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "infra.cli", "serve", "--role", role, "--port", str(port)],
                        env=env, cwd=work, stdout=log_file, stderr=subprocess.STDOUT,
                    )
                workers.append(Worker(role, port, process, log_path))
            for worker in workers:
                wait_for_health(worker, within=120)
            time.sleep(1.0)  # the relay publishes the seed events before the clock starts
            return _measure_processes(mode, config, system, workers, commands, rate)
        finally:
            stop_workers(workers)
            system.close()
            if config.keep_logs:
                kept = Path(tempfile.gettempdir()) / f"bench_saga_{mode}_logs_{os.getpid()}"
                shutil.copytree(work, kept, dirs_exist_ok=True)
                print(f"worker logs kept in {kept}", file=sys.stderr)


def stores_environment(settings: Settings) -> dict[str, str]:
    """The variables that point a role process at the run's databases and broker."""
    names = ["database_url", *(f"{context.lower()}_database_url" for context in CONTEXT_DATABASES)]
    env = {name.upper(): str(value) for name in names if (value := getattr(settings, name)) is not None}
    return env | {"AMQP_URL": str(settings.amqp_url), "QUEUE_TYPE": settings.queue_type}


def _measure_processes(
    mode: str, config: Config, system: System, workers: list[Worker], commands: Sequence[PlaceOrder],
    rate: float,
) -> dict[str, Any]:
    before = before_run(system)
    pids = {w.role: w.process.pid for w in workers}
    meter, connections = CpuMeter(pids), ConnectionSampler(system.settings)
    profiler = Profiler(config.profile, f"{mode}{'-paced' if rate else ''}", gil=config.profile_gil)

    def started() -> None:
        profiler.attach({**pids, "bench": os.getpid()})
        meter.start()
        connections.start()

    try:
        with BrokerTrouble() as trouble:
            timing = drive(system, commands, placers=config.placers, rate=rate, timeout=config.timeout,
                           poll=config.poll, on_start=started)
        cpu = meter.stop()
        logs = [w.log_path for w in workers]
        cpu["broker_connection_errors"] = trouble.count + broker_trouble_in_logs(logs)
        cpu["pg_connections_peak"] = connections.stop()
    finally:
        profiler.detach()
    dead = [f"{w.role} exited with {w.process.returncode}" for w in workers if w.process.poll() is not None]
    timing.errors += dead
    parked = asyncio.run(count_parked(system.settings))
    fails, facts = verify(system, commands, before)
    facts["hops"] = hop_latencies(system, before, {c.order_id for c in commands})
    return figures(mode, config, commands, rate, timing, fails, facts, cpu, parked)


async def count_parked(settings: Settings) -> int:
    bus: Bus = RabbitBus(str(settings.amqp_url), namespace=settings.bus_namespace, queues=QUEUES,
                         queue_type=settings.queue_type)
    await bus.start()
    try:
        return len(await bus.dead_letters())
    finally:
        await bus.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_health(worker: Worker, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            tail = worker.log_path.read_text(errors="replace")[-3000:]
            raise RunFailed(f"role {worker.role} exited with {worker.process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RunFailed(f"role {worker.role} did not answer /healthz within {within} s")


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 15
    for worker in workers:
        try:
            worker.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(10)
