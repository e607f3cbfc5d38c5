"""The audit's one-line summaries: plain words for known events, never a crash for others."""

from __future__ import annotations

from commands.audit.summaries import MAX_TEXT, Flag, flag_of, summarise

COMMAND = {"command_id": "5c1b6a0e-1f7b-5d38-9a55-2f6f0f3b1a11", "type": "RefundPayment", "payload": {}}


def test_a_saga_decision_names_its_step_and_the_command_it_sends() -> None:
    summary = summarise("OrderFulfillment.CompensationRequested", {"step": "payment", "command": COMMAND})

    assert summary == "undo payment -> RefundPayment"


def test_a_long_reason_is_cut_short() -> None:
    summary = summarise("Shipment.Failed", {"order_id": "o", "reason": "x" * 500})

    assert summary.startswith("failed: xxx")
    assert summary.endswith("…")
    assert len(summary) == len("failed: ") + MAX_TEXT


def test_an_unknown_or_malformed_event_lists_its_plain_fields() -> None:
    unknown = {"points": 12, "tier": "gold", "lines": []}
    assert summarise("Loyalty.PointsEarned", unknown) == "points=12, tier=gold"
    assert summarise("Payment.Charged", {"transaction_id": "txn_1"}) == "transaction_id=txn_1"


def test_failures_compensations_and_completions_are_flagged() -> None:
    assert flag_of("Payment.Declined") is Flag.FAILURE
    assert flag_of("Payment.Refunded") is Flag.COMPENSATION
    assert flag_of("Order.Completed") is Flag.COMPLETION
    assert flag_of("Payment.Charged") is None


def test_what_orders_heard_of_a_product_reads_as_its_name_and_price() -> None:
    heard = {"name": "Wireless Mouse", "price": {"amount": "49.99", "currency": "USD"}}

    assert summarise("Product.Heard", heard) == "heard Inventory list Wireless Mouse at 49.99 USD"
