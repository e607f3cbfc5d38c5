"""The load: --clients clients dealt out to --load-processes processes, each one event loop of raw
HTTP/1.1 keep-alive connections, one per client, sending the requests built beforehand and comparing
each answer's bytes with the one learned. Cheap on purpose, so that it is not what limits the server.

Each client sends its next request as soon as its last answer has been read; a fresh request is
numbered (the phase of its process, the client, how many it sent before), so that no two are alike.
Latency is one request: its bytes written -> its whole answer read (perf_counter_ns, the same clock
in every process); the processes send their samples back, so percentiles are of every request.
"""

from __future__ import annotations

import array
import asyncio
import gc
import multiprocessing
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, cast

from bench.api_parts.config import RunFailed
from bench.api_parts.requests import FRESH_NUMBER, ClientPlan, kind_of_error, parse_response

SAMPLES_KEPT = 5
PER_CLIENT = 10**10
"""Fresh requests a client may send in one phase; its FRESH_NUMBER leaves 10**8 (phase, client) pairs."""


@dataclass
class Tally:
    latencies_ns: array.array[int] = field(default_factory=lambda: array.array("q"))
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < SAMPLES_KEPT:
            self.samples.append(detail[:300])


class Client(asyncio.Protocol):
    """One load client on one connection: sends, reads the answer, checks it, sends the next."""

    def __init__(self, plan: ClientPlan, phase: Phase) -> None:
        self.plan = plan
        self.phase = phase
        self.rng = random.Random(phase.seed * 1000 + plan.index)
        self.buffer = bytearray()
        self.asked = 0
        self.sent_at = 0
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.number = (phase.number * 100_000 + plan.index) * PER_CLIENT

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's subclasses

    def send(self) -> None:
        assert self.transport is not None
        self.asked = self.rng.randrange(len(self.plan.requests))
        self.busy = True
        if self.plan.fresh is None:
            request = self.plan.requests[self.asked]
        else:
            before, after = self.plan.fresh[self.asked]
            request = before + FRESH_NUMBER % self.number + after
            self.number += 1
        self.sent_at = time.perf_counter_ns()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.busy and (parsed := parse_response(self.buffer)) is not None:
            now = time.perf_counter_ns()
            status, body, used = parsed
            del self.buffer[:used]
            self.busy = False
            if status == 200 and body == self.plan.expected[self.asked]:
                self.phase.tally.latencies_ns.append(now - self.sent_at)
            else:
                key = self.plan.keys[self.asked]
                self.phase.tally.error(kind_of_error(status, body, key), f"{key}: {body[:300]!r}")
            if now < self.phase.stop_at:
                self.send()
            else:
                self.phase.client_done(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.busy = False
            self.phase.tally.error("connection lost", repr(exc))
            self.phase.client_done(time.perf_counter_ns())


class Phase:
    """Every client of this process asking for `seconds`; done once each has had its last answer."""

    def __init__(self, seed: int, number: int, seconds: float, clients: int) -> None:
        self.seed = seed
        self.number = number
        self.tally = Tally()
        self.stop_at = time.perf_counter_ns() + int(seconds * 1e9)
        self.left = clients
        self.ended = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def client_done(self, now: int) -> None:
        self.left -= 1
        self.ended = max(self.ended, now)
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)


async def run_phase(
    host: str, port: int, plans: list[ClientPlan], seconds: float, seed: int, number: int
) -> dict[str, Any]:
    """Connect each client afresh (the server drops idle connections), then let them ask for `seconds`."""
    loop = asyncio.get_running_loop()
    phase = Phase(seed, number, seconds, len(plans))
    clients = [(await loop.create_connection(partial(Client, plan, phase), host, port))[1] for plan in plans]
    phase.stop_at = time.perf_counter_ns() + int(seconds * 1e9)
    started = time.perf_counter_ns()
    for client in clients:
        client.send()
    await phase.done
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return {"latencies_ns": phase.tally.latencies_ns.tobytes(), "errors": dict(phase.tally.errors),
            "samples": phase.tally.samples, "started_ns": started, "ended_ns": phase.ended}


def drive(host: str, port: int, plans: list[ClientPlan], pipe: Connection) -> None:
    """A load process: runs each phase its parent asks for (seconds, seed) until it sends None."""
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    gc.freeze()
    gc.disable()  # nothing in a phase makes cycles: the collector would only cost the load
    pipe.send("ready")
    number = 0
    while (command := pipe.recv()) is not None:
        seconds, seed = command
        number += 1  # from 1: a fresh request is never the one numbered 0
        try:
            pipe.send(loop.run_until_complete(run_phase(host, port, plans, seconds, seed, number)))
        except OSError as error:
            pipe.send({"failed": repr(error)})
    loop.close()


class LoadProcesses:
    """The load processes of one query: started once, each phase asked of all of them at once."""

    def __init__(self, host: str, port: int, plans: list[ClientPlan], processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for k in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(target=drive, args=(host, port, plans[k::processes], theirs),
                                      daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)
        for pipe in self.pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                raise RunFailed("a load process did not start")

    @property
    def pids(self) -> set[int]:
        return {p.pid for p in self.processes if p.pid is not None}

    def phase(self, seconds: float, seed: int) -> tuple[Tally, float]:
        """Every client asking for `seconds`: the tally of all, and the wall time, first sent to last read."""
        for pipe in self.pipes:
            pipe.send((seconds, seed))
        results = [pipe.recv() for pipe in self.pipes]
        if failed := [r["failed"] for r in results if "failed" in r]:
            raise RunFailed(f"a load process could not connect: {failed[0]}")
        tally = Tally()
        for result in results:
            tally.latencies_ns.frombytes(result["latencies_ns"])
            tally.errors.update(result["errors"])
            tally.samples.extend(result["samples"][:SAMPLES_KEPT - len(tally.samples)])
        wall_ns = max(r["ended_ns"] for r in results) - min(r["started_ns"] for r in results)
        return tally, wall_ns / 1e9

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
