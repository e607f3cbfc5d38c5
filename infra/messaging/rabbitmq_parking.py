"""Reading the parking queues: one reader at a time, across every process of a namespace.

A RabbitMQ queue cannot be read without taking its messages: to list `<queue>.dead`,
or to find one letter in it for a redrive, a reader holds every parked message
unacknowledged for a moment and then returns them in order. Two readers at once
would each miss what the other holds, so a redrive in one process while another
lists (the projector does every few seconds) would answer "not found". So every
reader of the parking queues first holds this lock: an exclusive queue of the
namespace (`saga.parked.lock`), which only one connection at a time may declare,
in a cluster too, and which the broker deletes with its connection, so a process
that dies while it reads holds nothing. No consumer reads a parking queue; with
the lock, no reader can see a letter missing because another holds it. A reader
that finds the lock taken tries again every few milliseconds, up to its timeout.

The broker grants the lock to whoever declares it first, not to whoever has
waited longest: a process that reads again at once (a listing loop, a script's
redrives one after another) would take it back within a round trip of letting it
go, before a waiter's next try, and another process's redrive could wait out its
timeout. So a process that has just let the lock go waits HAND_OVER_SECONDS,
longer than a waiter's interval between tries, before it takes it again
(`ParkingLock`): every waiter tries once meanwhile, and one of them has it.

A record of parked messages outside their queue (a stream the parking also fed)
was weighed and set aside: on RabbitMQ 3.10 a stream's readers, created and
cancelled as often as listings are, stopped being answered after a while, and
the broker with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from aiormq.exceptions import ChannelLockedResource
from pamqp.common import FieldTable

from infra.messaging.rabbitmq_consumer import put_back

PARKING_LOCK = "saga.parked.lock"
RETRY_SECONDS = 0.02
HAND_OVER_SECONDS = 3 * RETRY_SECONDS
TURN_SECONDS = 30.0
"""How long a bus's reader waits for its turn at the lock, at least. Each turn of another is one read of
the parking queues, bounded by that reader's own timeouts (and a dead reader's lock goes with its
connection), so waiting longer only lets the readers through one after another. The connection's timeout,
which still bounds each call to the broker, is too short for it: on a host whose two cores the broker
shares, two processes listing in turn kept a redrive waiting longer than five seconds."""


class ParkingLock:
    """One process's turns at its namespace's lock (`name`, the broker's name of PARKING_LOCK).

    A turn that follows this process's last one by less than HAND_OVER_SECONDS waits out the rest
    first, so that a process reading again and again lets the others in between its turns.
    """

    def __init__(self, name: str, *, within: float, turn: float | None = None) -> None:
        self._name = name
        self._within = within  # each call to the broker
        self._turn = within if turn is None else max(within, turn)  # the wait for the lock
        self._let_go_at: float | None = None

    @asynccontextmanager
    async def holding(self, connection: AbstractConnection) -> AsyncIterator[None]:
        """Hold the lock while the body runs; TimeoutError when others keep it for `turn` seconds."""
        loop = asyncio.get_running_loop()
        if self._let_go_at is not None:
            await asyncio.sleep(self._let_go_at + HAND_OVER_SECONDS - loop.time())
        try:
            async with holding_the_parking_queues(
                connection, self._name, within=self._within, turn=self._turn
            ):
                yield
        finally:
            self._let_go_at = loop.time()


@asynccontextmanager
async def holding_the_parking_queues(
    connection: AbstractConnection, name: str, *, within: float, turn: float | None = None
) -> AsyncIterator[None]:
    """Hold the namespace's lock (`name`, the broker's name of PARKING_LOCK) while the body runs.

    TimeoutError when another process holds it for longer than `turn` seconds (`within` unless
    given), or when a call to the broker takes longer than `within`.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (within if turn is None else turn)
    while True:
        # A channel of its own, not robust: the broker closes it when the lock is taken, and a
        # robust channel would open itself again behind our back.
        channel = aio_pika.Channel(connection, publisher_confirms=False)
        await channel.initialize(timeout=within)
        declaring = asyncio.ensure_future(
            channel.declare_queue(name, exclusive=True, auto_delete=False, timeout=within))
        try:
            lock = await asyncio.shield(declaring)
            break
        except asyncio.CancelledError:
            # Cancelled while the broker may be granting it: once granted, let it go at once, or the
            # lock would stay with this connection, and keep every other process out, while it lives.
            declaring.add_done_callback(_let_go_if_granted)
            raise
        except ChannelLockedResource:
            if loop.time() > deadline:
                raise TimeoutError("another process kept the parking queues locked") from None
            await asyncio.sleep(RETRY_SECONDS)
    try:
        yield
    finally:
        # The lock goes with the connection in any case; deleting it frees it for the next reader now.
        await asyncio.shield(lock.delete(if_unused=False, if_empty=False, timeout=within))
        await channel.close()


def _let_go_if_granted(declaring: asyncio.Future[AbstractQueue]) -> None:
    if not declaring.cancelled() and declaring.exception() is None:
        lock = declaring.result()
        _letting_go.add(task := asyncio.ensure_future(lock.delete(if_unused=False, if_empty=False)))
        task.add_done_callback(_letting_go.discard)


_letting_go: set[asyncio.Future[Any]] = set()  # the deletes under way, kept from the garbage collector


async def take_parked(
    channel: AbstractRobustChannel, name: str, arguments: FieldTable, *, within: float
) -> list[AbstractIncomingMessage]:
    """Every message of the parking queue `name`, held unacknowledged until `put_back` returns them in order.

    Only while holding the parking queues' lock.
    """
    dead = await channel.declare_queue(name, durable=True, robust=False, arguments=arguments)
    parked: list[AbstractIncomingMessage] = []
    try:
        while (message := await dead.get(no_ack=False, fail=False, timeout=within)) is not None:
            parked.append(message)
    except BaseException:
        await asyncio.shield(put_back(parked))  # even when cancelled: no letter left held
        raise
    return parked
