"""The simulated outside world: reproducible for a seed, and failing at the configured rate."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from commands.simulation import (
    DECLINE_REASONS,
    Accepted,
    Approved,
    Booked,
    FailureSimulator,
    Refused,
    SimulatedCarrier,
    SimulatedGateway,
    SimulatedNotifier,
)
from domain.values import Address, Money

ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701",
                  country="US")
KEYS = [UUID(int=i) for i in range(10_000)]


def charge(gateway: SimulatedGateway, order_id: UUID) -> Approved | Refused:
    return gateway.charge(order_id=order_id, customer_id=uuid4(), amount=Money.of("10.00"))


def test_the_same_seed_and_key_give_the_same_answer_every_time() -> None:
    order_id = uuid4()
    answers = {charge(SimulatedGateway(FailureSimulator(0.5, seed=7)), order_id)
               for _ in range(20)}
    assert len(answers) == 1


def test_a_seeded_run_is_reproducible_across_processes_and_releases() -> None:
    # Pinned answers: they change only if the simulation's contract changes.
    gateway = SimulatedGateway(FailureSimulator(0.5, seed=42))
    assert [charge(gateway, UUID(int=i)) for i in (1, 2, 3)] == [
        Approved("txn_960cb4629a6fb474"), Approved("txn_c3b84d06148b3b49"),
        Refused("insufficient funds"),
    ]
    carrier = SimulatedCarrier(FailureSimulator(0.5, seed=42))
    assert carrier.book(order_id=UUID(int=1), address=ADDRESS) == Booked("TRK172248224507")


def test_different_seeds_make_different_runs() -> None:
    first, second = FailureSimulator(0.5, seed=1), FailureSimulator(0.5, seed=2)
    differing = sum(first.fails("charge", k) != second.fails("charge", k) for k in KEYS[:1000])
    assert 400 < differing < 600


def test_without_a_seed_one_process_still_agrees_with_itself() -> None:
    assert [FailureSimulator(0.5).fails("charge", k) for k in KEYS[:200]] == [
        FailureSimulator(0.5).fails("charge", k) for k in KEYS[:200]
    ]


@pytest.mark.parametrize("rate", [0.02, 0.05, 0.1, 0.5])
def test_about_the_configured_share_of_calls_fail(rate: float) -> None:
    simulator = FailureSimulator(rate, seed=2024)
    share = sum(simulator.fails("charge", k) for k in KEYS) / len(KEYS)
    # Five standard deviations of a binomial share over 10,000 draws.
    assert abs(share - rate) < 5 * (rate * (1 - rate) / len(KEYS)) ** 0.5


def test_a_zero_rate_never_fails_and_a_rate_of_one_always_does() -> None:
    assert not any(FailureSimulator(0.0, seed=3).fails("book", k) for k in KEYS[:1000])
    assert all(FailureSimulator(1.0, seed=3).fails("book", k) for k in KEYS[:1000])


def test_what_is_decided_for_one_purpose_says_nothing_about_another() -> None:
    simulator = FailureSimulator(0.5, seed=11)
    agree = sum(simulator.fails("charge", k) == simulator.fails("book", k) for k in KEYS[:2000])
    assert 900 < agree < 1100


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_rate_outside_zero_to_one_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FailureSimulator(rate, seed=1)


def test_a_simulated_decline_gives_a_reason_and_an_approval_a_transaction_id() -> None:
    declined = charge(SimulatedGateway(FailureSimulator(1.0, seed=5)), uuid4())
    assert isinstance(declined, Refused)
    assert declined.reason in DECLINE_REASONS
    approved = charge(SimulatedGateway(FailureSimulator(0.0, seed=5)), uuid4())
    assert isinstance(approved, Approved)
    assert approved.transaction_id.startswith("txn_")


def test_every_order_gets_its_own_transaction_and_tracking_number() -> None:
    gateway = SimulatedGateway(FailureSimulator(0.0, seed=5))
    carrier = SimulatedCarrier(FailureSimulator(0.0, seed=5))
    transactions = {charge(gateway, k) for k in KEYS[:500]}
    parcels = {carrier.book(order_id=k, address=ADDRESS) for k in KEYS[:500]}
    assert len(transactions) == len(parcels) == 500


def test_a_repeated_refund_key_gives_the_same_reference() -> None:
    gateway = SimulatedGateway(FailureSimulator(1.0, seed=5))
    key = uuid4()
    first = gateway.refund(transaction_id="t", amount=Money.of("1.00"), key=key)
    assert gateway.refund(transaction_id="t", amount=Money.of("1.00"), key=key) == first
    assert gateway.refund(transaction_id="t", amount=Money.of("1.00"), key=uuid4()) != first


def test_the_simulated_notifier_fails_at_its_rate() -> None:
    def send(rate: float) -> Accepted | Refused:
        notifier = SimulatedNotifier(FailureSimulator(rate, seed=5))
        return notifier.send(
            message_id=uuid4(), customer_id=uuid4(), channel="email", subject="s", body="b"
        )

    assert isinstance(send(1.0), Refused)
    assert send(0.0) == Accepted()
