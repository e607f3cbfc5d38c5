"""The record of parked messages on RabbitMQ: listing them without taking them off `<queue>.dead`.

A queue cannot be read without taking its messages: to list `<queue>.dead` one must
hold every message unacknowledged, and while one process lists (the projector does
every few seconds), a redrive in another finds nothing. So a consumer parks a message
with one publish to the namespace's `saga.parked` exchange, which routes it both to
`<queue>.dead` (bound by the queue's name) and to `saga.parked.log`, a stream (bound
by `#`) that records every parking. Readers of a stream take nothing away, and the
broker confirms the publish only once both queues hold it, so the record is kept by
the broker that keeps the messages, with no database in the bus.
A redrive takes its one message from `.dead` and then appends a removal (by dead-letter
id) to the stream; listing folds the stream, parkings minus removals, and never touches
`.dead`. Other designs weighed: a table in the read store would make the bus need a
database, and a second queue per `.dead` queue could not be read without taking either.

Reading to the end: AMQP does not say where a stream ends, so a listing appends a mark
and reads up to it; a bus keeps its fold and the next offset, and reads on from there.
Crash windows, always towards listing too much: a redrive that stops after taking its
message but before its removal leaves the letter listed; a redrive of it then answers
"not found" and records the removal. Redrives and reconciliation take `.dead` only while
holding an exclusive queue (`saga.parked.lock`, dropped with its connection), so no
redrive finds a letter missing because another process held it for a moment.
Retention: the stream keeps 30 days (`x-max-age`, whole segments of 8 MB dropped at
once), and a listing records again (`renewed`) every letter whose newest record is a
week old, so a letter stays listed while any process lists at least every three weeks;
a renewal read after a removal of its letter counts for nothing. A letter whose records
all expired, a message parked before this record existed, or one parked by hand is
listed again by reconciliation, which `declare_topology` (`saga migrate`) runs: it reads
each `.dead` under the lock and records what the fold lacks.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.exceptions import ChannelLockedResource
from pamqp.common import FieldTable

from infra.messaging.bus import DeadLetter
from infra.messaging.rabbitmq_consumer import put_back
from infra.messaging.rabbitmq_messages import (
    ATTEMPTS,
    DEAD_LETTER_ID,
    ERROR,
    PARK_HEADERS,
    PARKED_AT,
    copy_message,
    dead_letter,
    letter_id,
    own_headers,
)

logger = logging.getLogger(__name__)

PARKED_EXCHANGE = "saga.parked"
PARKED_LOG = "saga.parked.log"
PARKED_LOCK = "saga.parked.lock"
RECORD = "x-record"  # absent on a consumer's parking; "recorded", "renewed", "removed" or "mark"
RECORDED_AT = "x-recorded-at"
MARK = "x-mark"
STREAM_OFFSET = "x-stream-offset"
LOG_ARGUMENTS: FieldTable = {"x-queue-type": "stream", "x-max-age": "30D",
                             "x-stream-max-segment-size-bytes": 8_000_000}
RENEW_AFTER = timedelta(days=7)
READ_PREFETCH = 500  # a stream is read by a consumer with a prefetch; basic.get is refused
LOCK_RETRY_SECONDS = 0.05


class ParkedRecord:
    """The parked messages of a namespace, as its `saga.parked.log` stream records them."""

    def __init__(
        self,
        name: Callable[[str], str],
        connection: Callable[[], AbstractRobustConnection],
        channel: Callable[[], AbstractRobustChannel],
        dead_arguments: FieldTable,
        timeout: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`name`: the broker's name of one of ours; `channel`: a channel with publisher confirms."""
        self._name = name
        self._connection = connection
        self._channel = channel
        self._dead_arguments = dead_arguments
        self._timeout = timeout
        self._now = now
        self._declared = False
        self._folding = asyncio.Lock()
        self._holding = asyncio.Lock()  # the exclusive queue is the connection's: one holder in here too
        self._next: int | None = None
        self._live: dict[str, DeadLetter] = {}
        self._recorded: dict[str, datetime] = {}
        self._removed: set[str] = set()

    async def declare(self, channel: AbstractRobustChannel, dead: AbstractQueue | None = None,
                      queue: str = "") -> None:
        """Declare the exchange and the stream, and bind `dead` (the broker's `queue`.dead) to parkings."""
        exchange = await channel.declare_exchange(self._name(PARKED_EXCHANGE), aio_pika.ExchangeType.TOPIC,
                                                  durable=True)
        log = await channel.declare_queue(self._name(PARKED_LOG), durable=True, arguments=LOG_ARGUMENTS)
        await log.bind(exchange, "#")
        if dead is not None:
            await dead.bind(exchange, queue)
        self._declared = True

    async def letters(self, queue: str | None = None) -> list[DeadLetter]:
        """The letters parked and not removed, oldest first."""
        await self._catch_up()
        await self._renew()
        letters = [letter for letter in self._live.values() if queue is None or letter.queue == queue]
        return sorted(letters, key=lambda letter: (letter.parked_at, letter.id))

    async def redrive(self, dead_letter_id: str) -> bool:
        queue, separator, _ = dead_letter_id.rpartition(":")
        if not separator or not queue:
            return False
        async with self._exclusive():
            parked = await self._take(queue)
            try:
                found = next((m for m in parked if letter_id(queue, m) == dead_letter_id), None)
                if found is not None:
                    headers = {k: v for k, v in own_headers(found).items() if k not in PARK_HEADERS}
                    await (await self._ready()).default_exchange.publish(
                        copy_message(found, headers), self._name(queue), mandatory=True, timeout=self._timeout
                    )
                    await found.ack()
                # Found or not, it is not in `.dead` now: a letter listed after a redrive stopped short goes.
                removal: FieldTable = {RECORD: "removed", DEAD_LETTER_ID: dead_letter_id}
                await self._append(aio_pika.Message(b"", headers=removal))
            finally:
                await put_back(parked)
        return found is not None

    async def reconcile(self, queues: Sequence[str]) -> int:
        """Record every message of the queues' `.dead` that the record lacks; how many."""
        recorded = 0
        async with self._exclusive():
            await self._catch_up()
            for queue in queues:
                parked = await self._take(queue)
                try:
                    for message in parked:
                        if (name := letter_id(queue, message)) not in self._live:
                            await self._append(self._recording(queue, name, message))
                            recorded += 1
                finally:
                    await put_back(parked)
        return recorded

    def _recording(self, queue: str, name: str, message: AbstractIncomingMessage) -> aio_pika.Message:
        letter = dead_letter(queue, message)  # its parking time, read once and then kept
        headers = own_headers(message) | {
            DEAD_LETTER_ID: name, PARKED_AT: letter.parked_at.isoformat(), RECORD: "recorded",
            RECORDED_AT: self._now().isoformat(),
        }
        return copy_message(message, headers)

    async def _renew(self) -> None:
        due = self._now() - RENEW_AFTER
        for name, letter in list(self._live.items()):
            if self._recorded.get(name, due) <= due:
                await self._append(aio_pika.Message(letter.body, type=letter.message_type, headers={
                    ERROR: letter.error, ATTEMPTS: letter.attempts, PARKED_AT: letter.parked_at.isoformat(),
                    DEAD_LETTER_ID: name, RECORD: "renewed", RECORDED_AT: self._now().isoformat(),
                }))
                self._recorded[name] = self._now()

    async def _catch_up(self) -> None:
        """Fold every record up to a mark appended now."""
        async with self._folding:
            mark = uuid.uuid4().hex
            await self._append(aio_pika.Message(b"", headers={RECORD: "mark", MARK: mark}))
            start = self._next
            try:
                records = await self._read(mark, "first" if start is None else start)
            except TimeoutError:
                if start is None:
                    raise
                # Waiting past the end of a stream deleted and declared again: read it afresh.
                self._next, self._live, self._recorded, self._removed = None, {}, {}, set()
                records = await self._read(mark, "first")
            for record in records:
                self._apply(record)
            self._next = _offset(records[-1]) + 1

    async def _read(self, mark: str, start: int | str) -> list[AbstractIncomingMessage]:
        channel = aio_pika.Channel(self._connection(), publisher_confirms=False)
        await channel.initialize(timeout=self._timeout)
        records: list[AbstractIncomingMessage] = []
        arrived = asyncio.Event()

        async def on_record(record: AbstractIncomingMessage) -> None:
            records.append(record)
            arrived.set()

        try:
            await channel.set_qos(prefetch_count=READ_PREFETCH)
            log = await channel.get_queue(self._name(PARKED_LOG), ensure=False)
            tag = await log.consume(on_record, arguments={STREAM_OFFSET: start})
            async with asyncio.timeout(self._timeout):
                while not any(_is_mark(record, mark) for record in records):
                    await arrived.wait()
                    arrived.clear()
                    # Acknowledged here, one ack for all, only while the channel is open: the
                    # consumer's credit. A stream keeps what is acknowledged, and refuses a nack.
                    await records[-1].ack(multiple=True)
            await log.cancel(tag)
        finally:
            await channel.close()
        records.sort(key=_offset)
        end = next(i for i, record in enumerate(records) if _is_mark(record, mark))
        return records[: end + 1]

    def _apply(self, record: AbstractIncomingMessage) -> None:
        headers = record.headers or {}
        kind, name = headers.get(RECORD), _text(headers.get(DEAD_LETTER_ID))
        if kind == "mark" or not name:
            return
        if kind == "removed":
            self._live.pop(name, None)
            self._recorded.pop(name, None)
            self._removed.add(name)
            return
        if kind == "renewed" and name in self._removed:
            return  # written by a listing that had not yet read the removal
        self._removed.discard(name)
        letter = dead_letter(name.rpartition(":")[0], record)
        self._live[name] = letter
        stamp = headers.get(RECORDED_AT)
        self._recorded[name] = datetime.fromisoformat(_text(stamp)) if stamp else letter.parked_at

    async def _append(self, record: aio_pika.Message) -> None:
        channel = await self._ready()
        if not self._declared:
            await self.declare(channel)
        record.delivery_mode = aio_pika.DeliveryMode.PERSISTENT
        await channel.default_exchange.publish(record, self._name(PARKED_LOG), mandatory=True,
                                               timeout=self._timeout)

    async def _take(self, queue: str) -> list[AbstractIncomingMessage]:
        """Every message of a queue's `.dead`, held unacknowledged until `put_back` returns them in order."""
        channel = await self._ready()
        dead = await channel.declare_queue(f"{self._name(queue)}.dead", durable=True, robust=False,
                                           arguments=self._dead_arguments)
        parked: list[AbstractIncomingMessage] = []
        try:
            while (message := await dead.get(no_ack=False, fail=False, timeout=self._timeout)) is not None:
                parked.append(message)
        except BaseException:
            await put_back(parked)
            raise
        return parked

    async def _ready(self) -> AbstractRobustChannel:
        # During a reconnect, wait for the channel to be restored rather than fail at once.
        channel = self._channel()
        async with asyncio.timeout(self._timeout):
            await channel.ready()
        return channel

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Hold the namespace's lock queue: one taker of `.dead` at a time, across processes."""
        async with self._holding:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._timeout
            while True:
                channel = aio_pika.Channel(self._connection(), publisher_confirms=False)
                await channel.initialize(timeout=self._timeout)
                try:
                    lock = await channel.declare_queue(self._name(PARKED_LOCK), exclusive=True)
                    break
                except ChannelLockedResource:
                    if loop.time() > deadline:
                        raise TimeoutError("another process kept the dead letters locked") from None
                    await asyncio.sleep(LOCK_RETRY_SECONDS)
            try:
                yield
            finally:
                try:
                    await lock.delete(if_unused=False, if_empty=False)
                    await channel.close()
                except Exception:  # the lock goes with the connection all the same
                    logger.warning("could not release the dead letters' lock", exc_info=True)


def _is_mark(record: AbstractIncomingMessage, mark: str) -> bool:
    return (record.headers or {}).get(MARK) == mark


def _offset(record: AbstractIncomingMessage) -> int:
    value = (record.headers or {}).get(STREAM_OFFSET)
    return value if isinstance(value, int) else -1


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
