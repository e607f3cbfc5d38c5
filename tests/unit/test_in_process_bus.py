"""The bus contract, run here on the in-process bus and in tests/integration on RabbitMQ.

`BusContract` is written once: its tests take a started `bus` and a `send_raw` that
puts bytes on an exchange as a broken producer would. Each adapter's module
subclasses it and supplies those two fixtures.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from commands.contract.messages import Envelope
from infra.messaging.bus import (
    COMMANDS_EXCHANGE,
    EVENTS_EXCHANGE,
    BatchHandler,
    Bus,
    DeadLetter,
    Delivery,
    Outcome,
    Subscription,
    UnroutableError,
)
from infra.messaging.in_process import InProcessBus, topic_matches

DELAYS = (0.05, 0.1)
RawSender = Callable[[str, str, bytes], Awaitable[None]]
_positions = itertools.count(1)


def envelope(routing_key: str = "payments.PaymentCharged", **payload: object) -> Envelope:
    context, _, message_type = routing_key.partition(".")
    return Envelope(
        message_id=uuid4().hex, type=message_type, kind="event", correlation_id=uuid4(),
        causation_id=uuid4().hex, occurred_at=datetime.now(UTC), source=context,
        position=next(_positions), routing_key=routing_key, payload=dict(payload),
    )


class Recorder:
    """A batch handler that records what it is given and answers with `decide`."""

    def __init__(self, decide: Callable[[Delivery], Outcome] = lambda _: Outcome.done(),
                 gate: asyncio.Event | None = None) -> None:
        self.decide = decide
        self.gate = gate
        self.batches: list[list[Delivery]] = []
        self.done: list[Delivery] = []

    async def __call__(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        self.batches.append(list(deliveries))
        if self.gate is not None:
            await self.gate.wait()
        outcomes = [self.decide(d) for d in deliveries]
        self.done += [d for d, o in zip(deliveries, outcomes, strict=True) if o == Outcome.done()]
        return outcomes

    @property
    def deliveries(self) -> list[Delivery]:
        return [d for batch in self.batches for d in batch]

    def attempts_of(self, message: Envelope) -> list[int]:
        return [d.attempt for d in self.deliveries if d.envelope.message_id == message.message_id]


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false after {within} s")
        await asyncio.sleep(0.01)


async def settle(seconds: float = 0.3) -> None:
    """Long enough for any retry in flight (DELAYS) to come back."""
    await asyncio.sleep(seconds)


async def wait_for_parked(bus: Bus, queue: str, count: int) -> list[DeadLetter]:
    deadline = asyncio.get_running_loop().time() + 10
    while len(parked := await bus.dead_letters(queue)) < count:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert len(parked) == count, parked
    return parked


def payments(handler: BatchHandler, *keys: str, prefetch: int = 100) -> Subscription:
    return Subscription("payments", EVENTS_EXCHANGE, keys or ("payments.*",), handler, prefetch)


@pytest.fixture
async def bus() -> AsyncIterator[InProcessBus]:
    in_process = InProcessBus(retry_delays=DELAYS)
    await in_process.start()
    yield in_process
    await in_process.close()


@pytest.fixture
def send_raw(bus: InProcessBus) -> RawSender:
    return bus.publish_raw


class BusContract:
    """What every adapter of the Bus port does; a subclass per adapter supplies `bus` and `send_raw`."""

    async def test_a_published_message_reaches_its_subscriber_whole(self, bus: Bus) -> None:
        handler = Recorder()
        await bus.subscribe(payments(handler))
        sent = envelope(amount="10.00")
        await bus.publish(EVENTS_EXCHANGE, [sent])
        await eventually(lambda: len(handler.done) == 1)
        assert handler.deliveries == [Delivery(sent, attempt=1)]

    async def test_messages_available_together_are_handed_over_as_one_batch_and_acked(self, bus: Bus) -> None:
        handler = Recorder(gate=asyncio.Event())
        await bus.subscribe(payments(handler))
        await bus.publish(EVENTS_EXCHANGE, [envelope()])
        await eventually(lambda: len(handler.batches) == 1)
        waiting = [envelope() for _ in range(10)]
        await bus.publish(EVENTS_EXCHANGE, waiting)
        await settle()
        assert handler.gate is not None
        handler.gate.set()
        await eventually(lambda: len(handler.done) == 11)
        await settle()
        assert [len(batch) for batch in handler.batches] == [1, 10]
        assert [d.envelope for d in handler.batches[1]] == waiting

    async def test_a_binding_with_a_star_gets_one_word_of_its_context_only(self, bus: Bus) -> None:
        charges, orders, everything = Recorder(), Recorder(), Recorder()
        await bus.subscribe(payments(charges, "payments.*"))
        await bus.subscribe(Subscription("orders", EVENTS_EXCHANGE, ("orders.OrderPlaced",), orders))
        await bus.subscribe(Subscription("audit", EVENTS_EXCHANGE, ("#",), everything))
        charged, placed = envelope("payments.PaymentCharged"), envelope("orders.OrderPlaced")
        await bus.publish(EVENTS_EXCHANGE, [charged, placed])
        await eventually(lambda: len(everything.done) == 2 and len(charges.done) + len(orders.done) == 2)
        assert [d.envelope for d in charges.done] == [charged]
        assert [d.envelope for d in orders.done] == [placed]

    async def test_a_star_does_not_match_a_key_of_three_words(self, bus: Bus) -> None:
        await bus.subscribe(payments(Recorder(), "payments.*"))
        with pytest.raises(UnroutableError) as raised:
            await bus.publish(EVENTS_EXCHANGE, [envelope("payments.PaymentCharged.v2")])
        assert raised.value.routing_keys == ("payments.PaymentCharged.v2",)

    async def test_publishing_what_no_queue_is_bound_to_raises_instead_of_dropping_it(self, bus: Bus) -> None:
        await bus.subscribe(payments(Recorder()))
        with pytest.raises(UnroutableError):
            await bus.publish(EVENTS_EXCHANGE, [envelope("shipping.ShipmentCreated")])
        with pytest.raises(UnroutableError):
            await bus.publish(COMMANDS_EXCHANGE, [envelope("payments.ChargePayment")])

    async def test_a_handler_that_fails_twice_then_succeeds_handles_the_message_once(self, bus: Bus) -> None:
        handler = Recorder(lambda d: Outcome.done() if d.attempt == 3 else Outcome.retry("database down"))
        await bus.subscribe(payments(handler))
        sent = envelope()
        await bus.publish(EVENTS_EXCHANGE, [sent])
        await eventually(lambda: len(handler.done) == 1)
        await settle()
        assert handler.attempts_of(sent) == [1, 2, 3]
        assert [d.envelope for d in handler.done] == [sent]
        assert await bus.dead_letters("payments") == []

    async def test_a_retry_comes_back_to_the_failing_consumer_only(self, bus: Bus) -> None:
        flaky = Recorder(lambda d: Outcome.done() if d.attempt > 1 else Outcome.retry("conflict"))
        steady = Recorder()
        await bus.subscribe(payments(flaky))
        await bus.subscribe(Subscription("audit", EVENTS_EXCHANGE, ("payments.*",), steady))
        sent = envelope()
        await bus.publish(EVENTS_EXCHANGE, [sent])
        await eventually(lambda: len(flaky.done) == 1)
        await settle()
        assert flaky.attempts_of(sent) == [1, 2]
        assert steady.attempts_of(sent) == [1]

    async def test_a_retried_message_comes_back_behind_the_ones_waiting(self, bus: Bus) -> None:
        sent = [envelope() for _ in range(5)]
        handled: list[tuple[Envelope, int]] = []

        async def slow(deliveries: Sequence[Delivery]) -> list[Outcome]:
            await asyncio.sleep(0.04)  # so the retry (0.05 s) comes back while later messages still wait
            handled.extend((d.envelope, d.attempt) for d in deliveries)
            first_try = [d.envelope == sent[0] and d.attempt == 1 for d in deliveries]
            return [Outcome.retry("conflict") if f else Outcome.done() for f in first_try]

        await bus.subscribe(payments(slow, prefetch=1))
        await bus.publish(EVENTS_EXCHANGE, sent)
        await eventually(lambda: len(handled) == 6)
        assert handled == [(sent[0], 1), *((e, 1) for e in sent[1:]), (sent[0], 2)]

    async def test_a_handler_exception_retries_every_message_of_its_batch(self, bus: Bus) -> None:
        calls = itertools.count()

        async def explode_once(deliveries: Sequence[Delivery]) -> list[Outcome]:
            if next(calls) == 0:
                raise ConnectionError("database down")
            return await handler(deliveries)

        handler = Recorder(gate=None)
        await bus.subscribe(Subscription("payments", EVENTS_EXCHANGE, ("payments.*",), explode_once))
        sent = [envelope() for _ in range(3)]
        await bus.publish(EVENTS_EXCHANGE, sent)
        await eventually(lambda: len(handler.done) == 3)
        await settle()
        assert sorted(d.envelope.message_id for d in handler.done) == sorted(e.message_id for e in sent)
        assert {d.attempt for d in handler.done} == {2}

    async def test_a_message_failing_every_attempt_is_parked_listed_and_redriven(self, bus: Bus) -> None:
        fixed = False
        handler = Recorder(lambda _: Outcome.done() if fixed else Outcome.retry("database down"))
        await bus.subscribe(payments(handler))
        sent = envelope()
        await bus.publish(EVENTS_EXCHANGE, [sent])
        parked = await wait_for_parked(bus, "payments", 1)
        assert handler.attempts_of(sent) == [1, 2, 3]
        letter = parked[0]
        assert (letter.queue, letter.message_type, letter.error, letter.attempts) == (
            "payments", "PaymentCharged", "database down", 3)
        assert letter.envelope == sent
        assert await bus.dead_letters("payments") == parked  # listing takes nothing away
        assert await bus.dead_letters() == parked
        fixed = True
        assert await bus.redrive(letter.id) is True
        await eventually(lambda: len(handler.done) == 1)
        assert handler.attempts_of(sent) == [1, 2, 3, 1]
        assert await bus.dead_letters("payments") == []
        assert await bus.redrive(letter.id) is False

    async def test_outcome_park_parks_at_once_with_its_error(self, bus: Bus) -> None:
        handler = Recorder(lambda _: Outcome.park("amount is negative"))
        await bus.subscribe(payments(handler))
        sent = envelope()
        await bus.publish(EVENTS_EXCHANGE, [sent])
        [letter] = await wait_for_parked(bus, "payments", 1)
        assert (letter.error, letter.attempts, letter.envelope) == ("amount is negative", 1, sent)
        assert handler.attempts_of(sent) == [1]

    async def test_an_unparseable_body_is_parked_at_once_and_the_queue_goes_on(
        self, bus: Bus, send_raw: RawSender
    ) -> None:
        handler = Recorder()
        await bus.subscribe(payments(handler))
        await send_raw(EVENTS_EXCHANGE, "payments.PaymentCharged", b"{not json")
        after = envelope()
        await bus.publish(EVENTS_EXCHANGE, [after])
        [letter] = await wait_for_parked(bus, "payments", 1)
        assert "unparseable" in letter.error
        assert (letter.attempts, letter.envelope, letter.body) == (1, None, b"{not json")
        await eventually(lambda: len(handler.done) == 1)
        assert handler.deliveries == [Delivery(after)]

    async def test_the_prefetch_bounds_every_batch(self, bus: Bus) -> None:
        handler = Recorder(gate=asyncio.Event())
        await bus.subscribe(payments(handler, prefetch=5))
        await bus.publish(EVENTS_EXCHANGE, [envelope()])
        await eventually(lambda: len(handler.batches) == 1)
        await bus.publish(EVENTS_EXCHANGE, [envelope() for _ in range(23)])
        await settle()
        assert handler.gate is not None
        handler.gate.set()
        await eventually(lambda: len(handler.done) == 24)
        sizes = [len(batch) for batch in handler.batches]
        assert max(sizes) == 5, sizes

    async def test_two_thousand_messages_published_at_once_all_arrive_in_order(self, bus: Bus) -> None:
        handler = Recorder()
        await bus.subscribe(payments(handler))
        sent = [envelope(n=n) for n in range(2000)]
        await bus.publish(EVENTS_EXCHANGE, sent)
        await eventually(lambda: len(handler.done) == 2000, within=30)
        assert [d.envelope.message_id for d in handler.done] == [e.message_id for e in sent]

    async def test_an_unknown_dead_letter_id_is_not_redriven(self, bus: Bus) -> None:
        await bus.subscribe(payments(Recorder()))
        assert await bus.redrive(f"payments:{uuid4().hex}") is False
        assert await bus.redrive("nonsense") is False

    async def test_a_started_bus_is_healthy_and_a_closed_one_is_not(self, bus: Bus) -> None:
        assert await bus.healthy() is True
        await bus.close()
        assert await bus.healthy() is False


class TestInProcessBus(BusContract):
    """The contract on the in-process bus."""




@pytest.mark.parametrize(
    ("binding", "routing_key", "matches"),
    [
        ("payments.*", "payments.PaymentCharged", True),
        ("payments.*", "orders.OrderPlaced", False),
        ("payments.*", "payments.PaymentCharged.v2", False),
        ("*", "payments.PaymentCharged", False),
        ("*.*", "payments.PaymentCharged", True),
        ("#", "payments.PaymentCharged", True),
        ("payments.#", "payments", True),
        ("#.PaymentCharged", "payments.PaymentCharged", True),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.*.b", "a.b", False),
        ("payments.PaymentCharged", "payments.PaymentCharged", True),
    ],
)
def test_topic_matching_follows_the_amqp_rules(binding: str, routing_key: str, matches: bool) -> None:
    assert topic_matches(binding, routing_key) is matches


async def test_retries_wait_the_configured_delays_and_parking_is_stamped_by_the_clock() -> None:
    waited: list[float] = []
    parked_at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    in_process = InProcessBus(retry_delays=(1.0, 5.0, 30.0), clock=lambda: parked_at, sleep=sleep)
    await in_process.start()
    await in_process.subscribe(payments(Recorder(lambda _: Outcome.retry("database down"))))
    await in_process.publish(EVENTS_EXCHANGE, [envelope()])
    [letter] = await wait_for_parked(in_process, "payments", 1)
    await in_process.close()
    assert waited == [1.0, 5.0, 30.0]
    assert (letter.attempts, letter.parked_at) == (4, parked_at)


async def test_publishing_before_start_is_refused() -> None:
    with pytest.raises(RuntimeError):
        await InProcessBus().publish(EVENTS_EXCHANGE, [envelope()])
