"""Replay: rebuild every read model from an event store holding a million events.

The events are real saga streams. A template of --template orders runs through
the whole saga on the embedded default (default failure rates, so some orders
are declined, refunded or cancelled); its stored events, in every application,
are then copied into the store under test until it holds --events events. Each
copy is the template with every id in it replaced by a fresh one (orders,
customers, payments, shipments, sagas, commands and products alike), so a copy
is another shop with its own catalogue, and every stream, version and
reference stays as consistent as the saga wrote it.

The template is run with personal data in clear; each copy is written twice, in
two stores: sealed with each copied customer's own key, as the applications seal
it (and the keys written with the events), and in clear, with sealing turned off.

Then `saga projections rebuild` runs as the CLI runs it (every projection, into
new tables, swapped in at the end), timed, first in one process (`--jobs 1`),
then with the CLI's default number of processes (or --jobs). Figures, on SQLite
and on PostgreSQL (the read store beside the event store, as `saga serve` puts it),
for the sealed store, and `decryption_ratio`, its events_per_s over the clear one's:

  events                    events in the event store (every application's log)
  rebuild_s                 wall time of the rebuild of every projection
  events_per_s              events / rebuild_s
  events_per_s_one_process  the same, rebuilt by one process
  log_read_per_s            reading every log once, in the rebuild's batch size,
                            without decoding: the ceiling of a replay here
  verify_events_per_s       recomputing every stream's hash chain (`saga verify --all`)
  projections               per projection: notifications replayed, and seconds

and checks its own result: nothing parked, and as many orders, payments,
shipments and sagas projected as the copies hold.

    python bench/replay.py [--events 1000000] [--template 500] [--stores sqlite,postgres] [--runs 1]
        [--jobs J]

Prints one JSON document on stdout and a summary on stderr. The built stores are
thrown away afterwards. DATABASE_URL names the PostgreSQL server (default the local one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput.config import FAILURE_RATES, WORKER_ROLES
from bench.throughput.load import drive
from bench.throughput.workload import make_orders, stock_up
from domain.privacy import personal_data_of
from infra.bootstrap import System, assemble, bootstrap, projector
from infra.eventstore.sealing import SealedStoredEvent
from infra.eventstore.verification import verify
from infra.parallel_rebuild import default_jobs, rebuild_projections
from infra.readstore.opening import open_read_store
from infra.runtime import Runtime, run_event_loop
from infra.settings import PostgresDsn, Settings
from projections.read_model import ProjectionStatusRow

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
UUID_TEXT = re.compile(rb"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
INSERT_CHUNK = 5000
LOG_READ_BATCH = 5000  # the rebuild's own batch size
COUNTED_TABLES = ("read_orders", "read_payments", "read_shipments", "read_sagas", "read_products",
                  "read_notifications")


# --------------------------------------------------------------------------------------
# The template: real saga streams
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateEvent:
    originator_id: uuid.UUID
    originator_version: int
    topic: str
    parts: tuple[bytes, ...]  # the stored state split at its ids: text, id, text, id, ..., text


@dataclass(frozen=True)
class Template:
    logs: dict[str, list[TemplateEvent]]  # application name -> its log, in order
    ids: tuple[bytes, ...]  # every id the template holds, as text
    rows: dict[str, int]  # rows of the counted read tables one copy makes

    @property
    def events(self) -> int:
        return sum(len(log) for log in self.logs.values())


def run_template(orders: int, seed: int) -> Template:
    """Run `orders` orders through the embedded saga and read back every application's log."""
    with tempfile.TemporaryDirectory(prefix="bench_replay_template_") as tmp:
        settings = Settings(
            _env_file=None, database_url=None, amqp_url=None, data_dir=Path(tmp) / "data",
            failure_seed=seed, log_level="WARNING", personal_data_encryption=False, **FAILURE_RATES,
        )
        logs = run_event_loop(_run_template(settings, orders, seed))
        rows = asyncio.run(count_rows(settings))
    ids: set[bytes] = set()
    split: dict[str, list[TemplateEvent]] = {}
    for name, events in logs.items():
        split[name] = []
        for event in events:
            parts = tuple(UUID_TEXT.split(event.state))
            ids.update(parts[1::2])
            ids.add(str(event.originator_id).encode())
            split[name].append(TemplateEvent(
                uuid.UUID(str(event.originator_id)), event.originator_version, event.topic, parts
            ))
    return Template(split, tuple(sorted(ids)), rows)


async def _run_template(settings: Settings, orders: int, seed: int) -> dict[str, list[StoredEvent]]:
    runtime = Runtime(assemble(settings, (*WORKER_ROLES, "projector"), seed=False))
    system = runtime.system
    commands = make_orders(orders, seed)
    try:
        await runtime.start()
        await asyncio.to_thread(stock_up, system, orders)
        timing = await asyncio.to_thread(
            drive, system, commands, placers=4, rate=0.0, timeout=600.0, poll=0.2
        )
        if timing.timed_out or timing.errors:
            raise SystemExit(f"the template run did not finish: {timing}")
        await caught_up(runtime)
        return {app.name: whole_log(app.recorder) for app in system.applications}
    finally:
        await runtime.stop()
        system.close()


async def caught_up(runtime: Runtime, within: float = 120.0) -> None:
    """Wait until the projector has seen every event (the template's row counts are read after)."""
    projector = runtime.projector
    assert projector is not None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(row.lag == 0 for row in await projector.read_model().projection_status()):
            return
        await asyncio.sleep(0.2)
    raise SystemExit("the template's projections did not catch up")


def whole_log(recorder: Any) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    position = 0
    while True:
        page = recorder.select_notifications(position, 10_000, inclusive_of_start=False)
        events += [StoredEvent(n.originator_id, n.originator_version, n.topic, n.state) for n in page]
        if len(page) < 10_000:
            return events
        position = page[-1].id


# --------------------------------------------------------------------------------------
# Copies of the template in the store under test
# --------------------------------------------------------------------------------------


def fresh_ids(template: Template, copy: int) -> dict[bytes, bytes]:
    """A new id for each of the template's ids, the same within one copy, different between copies."""
    key = copy.to_bytes(8, "big")
    return {
        old: str(uuid.UUID(bytes=hashlib.blake2b(old, key=key, digest_size=16).digest(), version=4)).encode()
        for old in template.ids
    }


def copy_of(events: Sequence[TemplateEvent], ids: dict[bytes, bytes]) -> list[StoredEvent]:
    copied = []
    for event in events:
        parts = list(event.parts)
        parts[1::2] = [ids[p] for p in parts[1::2]]
        copied.append(StoredEvent(
            originator_id=uuid.UUID(ids[str(event.originator_id).encode()].decode()),
            originator_version=event.originator_version,
            topic=event.topic,
            state=b"".join(parts),
        ))
    return copied


def fill(system: System, template: Template, copies: int) -> int:
    """Write `copies` copies of the template into the system's event stores; the events written.

    With sealing on, each application seals the personal fields of its copies as it would
    its own events, and its recorder writes the new keys with them. Orders, where personal
    data enters, goes first.
    """
    apps = {app.name: app for app in system.applications}
    order = sorted(template.logs, key=lambda name: not apps[name].personal_data_enters)
    written = 0
    for copy in range(copies):
        ids = fresh_ids(template, copy)
        for name in order:
            copied = copy_of(template.logs[name], ids)
            app = apps[name]
            for start in range(0, len(copied), INSERT_CHUNK):
                app.recorder.insert_events(sealed(app, copied[start:start + INSERT_CHUNK]))
            written += len(copied)
        if copy % 10 == 9:
            print(f"  {written:,} events written", file=sys.stderr)
    return written


def sealed(app: Any, events: list[StoredEvent]) -> list[StoredEvent]:
    """The events with their personal fields sealed by the application's keys, if it seals any."""
    keys, transcoder = getattr(app.mapper, "personal", None), app.mapper.transcoder
    if keys is None:
        return events
    states = {i: transcoder.decode(e.state) for i, e in enumerate(events) if keys.declares(e.topic)}
    classes = {i: resolve_topic(events[i].topic) for i in states}
    keys.prepare(s for i, state in states.items() if (s := subject_of_state(classes[i], state)))
    out = list(events)
    for i, state in states.items():
        e = events[i]
        seal = keys.conceal(classes[i], e.originator_id, state)
        out[i] = StoredEvent(e.originator_id, e.originator_version, e.topic, transcoder.encode(state)) \
            if seal is None else SealedStoredEvent(e.originator_id, e.originator_version, e.topic,
                                                   transcoder.encode(state), seal)
    return out


def subject_of_state(event_class: type[Any], state: dict[str, Any]) -> uuid.UUID | None:
    declared = personal_data_of(event_class)
    value: Any = state
    for name in (declared.subject.split(".") if declared else ()):
        value = value.get(name) if isinstance(value, dict) else None
    return uuid.UUID(str(value)) if declared and value else None


# --------------------------------------------------------------------------------------
# Stores under test
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_store(kind: str, server_url: str, *, sealing: bool) -> Iterator[Settings]:
    common: dict[str, Any] = {"_env_file": None, "log_level": "WARNING", "amqp_url": None,
                              "personal_data_encryption": sealing}
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench_replay_") as tmp:
            yield Settings(**common, database_url=None, data_dir=Path(tmp) / "data")
        return
    server = urlsplit(server_url)
    name = f"bench_replay_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = PostgresDsn(server.hostname or "127.0.0.1", server.port or 5432, name,
                      server.username or "postgres", server.password or "")
    try:
        yield Settings(**common, database_url=dsn.url)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def read_every_log(system: System, batch: int) -> tuple[int, float]:
    """Read every application's log once, undecoded, in batches: events read and seconds."""
    started, read = time.perf_counter(), 0
    for app in system.applications:
        position = 0
        while True:
            page = app.recorder.select_notifications(position, batch, inclusive_of_start=False)
            read += len(page)
            if len(page) < batch:
                break
            position = page[-1].id
    return read, time.perf_counter() - started


async def count_rows(settings: Settings) -> dict[str, int]:
    store = await open_read_store(settings)
    try:
        return {t: (await store.fetch(f"SELECT count(*) AS n FROM {t}"))[0]["n"] for t in COUNTED_TABLES}
    finally:
        await store.close()


def timed_rebuild(settings: Settings, jobs: int) -> dict[str, Any]:
    """`saga projections rebuild --jobs J`, timed, and what the projections' status says afterwards."""
    marks: dict[str, dict[str, float]] = {}

    def progress(name: str, done: int, total: int) -> None:
        now = time.perf_counter()
        mark = marks.setdefault(name, {"started": now, "notifications": 0})
        mark["notifications"], mark["finished"] = done, now

    started = time.perf_counter()
    rebuild_projections(settings, None, jobs=jobs, progress=progress)
    seconds = time.perf_counter() - started
    status = asyncio.run(projection_status(settings))
    return {
        "seconds": seconds,
        "parked": sum(row.failed for row in status),
        "lag": sum(row.lag for row in status),
        "projections": {
            name: {"notifications": int(m["notifications"]),
                   "seconds": round(m["finished"] - m["started"], 2)}
            for name, m in marks.items()
        },
    }


async def projection_status(settings: Settings) -> list[ProjectionStatusRow]:
    with bootstrap(settings) as system:
        async with projector(system) as replaying:
            return await replaying.read_model().projection_status()


def run_store(
    kind: str, template: Template, copies: int, jobs: int | None, server_url: str, *, sealing: bool = True
) -> dict[str, Any]:
    with fresh_store(kind, server_url, sealing=sealing) as settings:
        with bootstrap(settings) as system:
            started = time.perf_counter()
            events = fill(system, template, copies)
            fill_s = time.perf_counter() - started
            if kind == "postgres":
                with psycopg.connect(server_url, autocommit=True) as conn:
                    conn.execute("CHECKPOINT")
            read, read_s = read_every_log(system, LOG_READ_BATCH)
            chains = verify(system.applications)
        jobs = jobs or default_jobs()
        one = timed_rebuild(settings, 1) if jobs > 1 else None
        result = timed_rebuild(settings, jobs)
        rows = asyncio.run(count_rows(settings))
    expected = {table: n * copies for table, n in template.rows.items()}
    problems = []
    if result["parked"] or result["lag"]:
        problems.append(f"{result['parked']} events parked, lag {result['lag']} after the rebuild")
    if not chains.verified or chains.events != events:
        problems.append(f"hash chains: {chains.events} of {events} events checked, "
                        f"{'all hold' if chains.verified else 'some broken'}")
    if rows != expected:
        problems.append(f"rows {rows}, expected {expected}")
    if one is not None and (one["parked"] or one["lag"]):
        problems.append(f"one process: {one['parked']} events parked, lag {one['lag']} after the rebuild")
    return {
        "events": events,
        "fill_events_per_s": round(events / fill_s),
        "jobs": jobs,
        "rebuild_s": round(result["seconds"], 2),
        "events_per_s": round(events / result["seconds"]),
        "events_per_s_one_process": round(events / (one or result)["seconds"]),
        "log_read_per_s": round(read / read_s),
        "verify_events_per_s": round(chains.events_per_s),
        "projections": result["projections"],
        "rows": rows,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--template", type=int, default=500, help="orders in the template run")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=None,
                        help="rebuild processes (default: as `saga projections rebuild`)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    server_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)

    print(f"template: {args.template} orders through the embedded saga", file=sys.stderr)
    template = run_template(args.template, args.seed)
    copies = max(1, -(-args.events // template.events))
    print(f"template: {template.events:,} events, {len(template.ids):,} ids; {copies} copies",
          file=sys.stderr)
    report: dict[str, Any] = {"template_orders": args.template, "template_events": template.events,
                              "copies": copies, "loadavg_at_start": os.getloadavg()[0]}
    failed = False
    for kind in args.stores.split(","):
        runs: list[dict[str, Any]] = []
        clear_runs: list[dict[str, Any]] = []
        for run in range(args.runs):
            for sealing, into in ((True, runs), (False, clear_runs)):
                print(f"{kind}: run {run + 1} of {args.runs}, personal data "
                      f"{'sealed' if sealing else 'in clear'}", file=sys.stderr)
                into.append(run_store(kind, template, copies, args.jobs, server_url, sealing=sealing))
                r = into[-1]
                print(f"{kind}: {r['events']:,} events rebuilt in {r['rebuild_s']} s by {r['jobs']} "
                      f"process(es) = {r['events_per_s']:,}/s "
                      f"(one process {r['events_per_s_one_process']:,}/s, "
                      f"log read alone {r['log_read_per_s']:,}/s, chains verified "
                      f"{r['verify_events_per_s']:,}/s) {r['problems'] or ''}", file=sys.stderr)
                failed |= bool(r["problems"])
        clear = statistics.median(r["events_per_s"] for r in clear_runs)
        clear_one = statistics.median(r["events_per_s_one_process"] for r in clear_runs)
        report[kind] = {
            "events_per_s": statistics.median(r["events_per_s"] for r in runs),
            "events_per_s_one_process": statistics.median(r["events_per_s_one_process"] for r in runs),
            "rebuild_s": statistics.median(r["rebuild_s"] for r in runs),
            "log_read_per_s": statistics.median(r["log_read_per_s"] for r in runs),
            "verify_events_per_s": statistics.median(r["verify_events_per_s"] for r in runs),
            "clear_events_per_s": clear,
            "clear_events_per_s_one_process": clear_one,
            "decryption_ratio": round(statistics.median(r["events_per_s"] for r in runs) / clear, 3),
            "decryption_ratio_one_process": round(
                statistics.median(r["events_per_s_one_process"] for r in runs) / clear_one, 3),
            "runs": runs,
            "clear_runs": clear_runs,
        }
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
