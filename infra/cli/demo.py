"""`saga demo`: a load generator that drives a running API through GraphQL.

It reads the catalogue and its stock once and draws every order of the run.
When the stock will not cover them it says so, and restocks first with
--restock, or when the person at the terminal says yes (`demo_stock`). Then it
places the N orders C at a time and follows every order until it is COMPLETED
or CANCELLED, or until the overall timeout. An order refused for a product
Orders has not heard of yet (the catalogue reaches it through the relay, moments
after a first start lists the seed) is placed again for up to NOT_HEARD_WAIT. The orders are followed in
batches: one GraphQL request asks for up to POLL_BATCH orders at once
(`o0: order(id: …)`, `o1: …`), every POLL_INTERVAL seconds, so following a
thousand orders costs a few requests a second, not thousands. The summary
(outcomes, throughput, place-to-terminal latency) is computed by `summarize`,
a pure function of the outcomes. Where the API requires tokens, the demo sends
--token on every request (`demo_api` says which token places what).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from infra.cli.demo_api import EmptyCatalogueError as EmptyCatalogueError
from infra.cli.demo_api import GraphQLError, api_client, fetch_products, graphql, places_for_itself
from infra.cli.demo_api import TokenRefusedError as TokenRefusedError
from infra.cli.demo_api import UnreachableError as UnreachableError
from infra.cli.demo_stock import Lines, cover_the_run, terminal_question
from infra.cli.demo_summary import TERMINAL as TERMINAL
from infra.cli.demo_summary import Outcome, Summary, summarize
from infra.cli.demo_summary import finished_line as finished_line
from infra.cli.demo_summary import summary_table as summary_table

POLL_INTERVAL = 0.5  # seconds between two rounds of following the unfinished orders
POLL_BATCH = 15
"""Orders asked for in one GraphQL request: one alias each, as many as the API allows (`MAX_ALIASES`
of `read_api.graphql_limits`, which a test holds it to; importing it would load GraphQL's engine into
every `saga` command)."""
PLACE_ATTEMPTS = 3  # a request lost on the way is sent again with the same idempotency key
NOT_HEARD_WAIT = 15.0  # seconds an order of a product Orders has not heard of yet is placed again
NOT_HEARD_PAUSE = 0.25
ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701", "country": "US"}

PLACE = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status failureReason } errors { code message field } }
}"""


@dataclass
class Run:
    """The state shared by the placing workers and the follower."""

    client: httpx.AsyncClient
    plan: list[dict[str, Any]]  # the input of each order, drawn before the first is placed
    outcomes: list[Outcome]
    progress: Progress
    placed_task: TaskID
    finished_task: TaskID
    placing_done: asyncio.Event = field(default_factory=asyncio.Event)

    def finish(self, outcome: Outcome, status: str, reason: str | None, at: float) -> None:
        outcome.status, outcome.failure_reason, outcome.finished_at = status, reason, at
        self.progress.advance(self.finished_task)


def order_input(rng: random.Random, products: Sequence[str], key: str, *, for_itself: bool) -> dict[str, Any]:
    """1-2 random products, 1-3 units each, for a random customer (or, `for_itself`, the caller's own)."""
    lines = rng.sample(products, k=min(len(products), rng.randint(1, 2)))
    customer = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return {
        **({} if for_itself else {"customerId": customer}),
        "idempotencyKey": key,
        "items": [{"productId": product, "quantity": rng.randint(1, 3)} for product in lines],
        "shippingAddress": ADDRESS,
    }


def lines_of(order: dict[str, Any]) -> Lines:
    return {str(item["productId"]): int(item["quantity"]) for item in order["items"]}


async def place(run: Run, index: int, slots: asyncio.Semaphore) -> None:
    outcome = run.outcomes[index]
    not_heard_until = time.monotonic() + NOT_HEARD_WAIT
    async with slots:
        data = await send(run, index)
        while data is not None and _not_heard(data) and time.monotonic() < not_heard_until:
            await asyncio.sleep(NOT_HEARD_PAUSE)  # Orders hears the listing moments after a first start
            data = await send(run, index)
    if data is None:
        return
    now = time.monotonic()
    payload = data["placeOrder"]
    if payload["errors"] or payload["order"] is None:
        outcome.error_code = payload["errors"][0]["code"] if payload["errors"] else "NO_ORDER"
        return
    order = payload["order"]
    outcome.order_id, outcome.placed_at = str(order["id"]), now
    run.progress.advance(run.placed_task)
    if order["status"] in TERMINAL:
        run.finish(outcome, order["status"], order.get("failureReason"), now)


async def send(run: Run, index: int) -> dict[str, Any] | None:
    """Ask the API to place order `index`; None, its error code noted, when the request failed."""
    outcome, variables = run.outcomes[index], {"input": run.plan[index]}
    for attempt in range(1, PLACE_ATTEMPTS + 1):
        try:
            data: dict[str, Any] = await graphql(run.client, PLACE, variables)
            return data
        except httpx.TransportError as error:
            if attempt == PLACE_ATTEMPTS:  # the same idempotency key makes a resend safe
                outcome.error_code = type(error).__name__
        except httpx.HTTPStatusError as error:
            outcome.error_code = f"HTTP_{error.response.status_code}"
            return None
        except GraphQLError as error:
            outcome.error_code = error.code
            return None
    return None


def _not_heard(data: dict[str, Any]) -> bool:
    # The demo draws only products of the catalogue it read; Orders refuses one as unknown
    # only until it has heard Inventory list it, moments after the seed's first start.
    return any(e["code"] == "UNKNOWN_PRODUCT" for e in data["placeOrder"]["errors"])


def follow_query(order_ids: Sequence[str]) -> str:
    fields = " ".join(
        f"o{i}: order(id: {json.dumps(order_id)}) {{ status failureReason }}"
        for i, order_id in enumerate(order_ids)
    )
    return f"query {{ {fields} }}"


async def follow(run: Run) -> None:
    """Poll the placed, unfinished orders in batches until placing is over and every order is finished."""
    while True:
        placing_over = run.placing_done.is_set()
        pending = [o for o in run.outcomes if o.order_id is not None and not o.finished]
        for start in range(0, len(pending), POLL_BATCH):
            batch = pending[start:start + POLL_BATCH]
            try:
                data = await graphql(run.client, follow_query([str(o.order_id) for o in batch]))
            except (httpx.HTTPError, GraphQLError):
                continue  # a lost poll is retried next round
            now = time.monotonic()
            for i, outcome in enumerate(batch):
                order = data.get(f"o{i}")
                if order and order["status"] in TERMINAL:
                    run.finish(outcome, order["status"], order.get("failureReason"), now)
        if placing_over and all(o.finished for o in run.outcomes if o.order_id is not None):
            return
        await asyncio.sleep(POLL_INTERVAL)


async def place_all(run: Run, concurrency: int) -> None:
    slots = asyncio.Semaphore(concurrency)
    try:
        await asyncio.gather(*(place(run, i, slots) for i in range(len(run.outcomes))))
    finally:
        run.placing_done.set()


async def run_demo(
    url: str, orders: int, concurrency: int, within: float, console: Console, seed: int | None = None,
    *, restock: bool = False, token: str | None = None,
) -> Summary:
    """Drive the API at `url`, sending `token` (if any) as a bearer token on every request.

    Before placing, says whether the stock covers the run; tops it up first with `restock`, or asks on
    a terminal. Raises UnreachableError, EmptyCatalogueError, or TokenRefusedError when the API will
    not let this caller place orders.
    """
    async with api_client(url, token, concurrency + 2) as client:
        products = await fetch_products(client, url)
        for_itself = await places_for_itself(client, url, token)
        rng, run_id = random.Random(seed), uuid.uuid4().hex[:12]
        ids = [product.id for product in products]
        plan = [order_input(rng, ids, f"demo-{run_id}-{i}", for_itself=for_itself) for i in range(orders)]
        await cover_the_run(client, products, [lines_of(order) for order in plan], console,
                            restock=restock, question=terminal_question(console))
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console,
        )
        run = Run(
            client=client, plan=plan, outcomes=[Outcome() for _ in range(orders)], progress=progress,
            placed_task=progress.add_task("placed", total=orders),
            finished_task=progress.add_task("finished", total=orders),
        )
        started = time.monotonic()
        with progress:
            try:
                async with asyncio.timeout(within):
                    await asyncio.gather(place_all(run, concurrency), follow(run))
            except TimeoutError:
                pass
        return summarize(run.outcomes, time.monotonic() - started)


HELP = (
    "Load-test a running API: place orders through GraphQL and follow each one to COMPLETED or CANCELLED."
    "\n\n"
    "Reads the catalogue and its stock once, then places --orders orders (1-2 random products, 1-3 units "
    "each, a random customer) --concurrency at a time, and polls the unfinished ones in batches until each "
    "is COMPLETED or CANCELLED or --timeout runs out. A progress bar counts the orders placed and finished. "
    "The summary table counts the orders completed, cancelled (by reason: payment declined, stock "
    "reservation rejected, shipment failed, ...), unfinished and not placed (by error code), the throughput "
    "(finished orders per second of the run) and the latency from an order's placing to its final status "
    "(p50, p95, p99)."
    "\n\n"
    "Before placing, it says when the stock will not cover the run (the seed stock runs short within the "
    "first hundred orders). With --restock it first restocks each product up to what the run needs; "
    "without it, it asks on a terminal and prints a hint otherwise. Restocking is an admin's: every caller "
    "is one in dev mode (`make run`, `saga serve` without AUTH_JWT_SECRET); where the API requires tokens, "
    "give an admin's."
    "\n\n"
    "Where the API requires tokens, --token (or SAGA_TOKEN) is sent as a bearer token on every request: "
    "an operator's places orders for random customers, an admin's restocks too (saga token --admin), a "
    "customer's places every order for that customer."
    "\n\n"
    "Orders cancelled by the simulated failures (PAYMENT_FAILURE_RATE, SHIPPING_FAILURE_RATE of the "
    "server) are a normal outcome. The API must be running: `saga serve` in another shell, or `make run`."
    "\n\n"
    "Example: saga demo --orders 500 --concurrency 20 --restock --url http://127.0.0.1:8000"
)
