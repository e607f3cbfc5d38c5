"""The Notification aggregate's rules, as given/when/then over its events."""

from __future__ import annotations

from uuid import uuid4

from domain.base import ValidationError
from domain.notification import ORDER_CONFIRMATION, Notification, NotificationStatus
from tests.dsl import ev, given

ORDER = uuid4()
CUSTOMER = uuid4()


def test_a_sent_notification_records_what_was_said_to_whom() -> None:
    outcome = given().when(
        lambda _: Notification.sent(
            ORDER, CUSTOMER, ORDER_CONFIRMATION, "email", "Your order", "It is on its way."
        )
    )
    outcome.then(
        ev(Notification.Sent, order_id=ORDER, customer_id=CUSTOMER, channel="email",
           subject="Your order", body="It is on its way.")
    )
    assert outcome.result.status is NotificationStatus.SENT


def test_a_failed_notification_records_the_order_and_the_reason() -> None:
    outcome = given().when(
        lambda _: Notification.failed(ORDER, CUSTOMER, ORDER_CONFIRMATION, "sms", "no signal")
    )
    outcome.then(ev(Notification.Failed, order_id=ORDER, channel="sms", reason="no signal"))
    assert outcome.result.status is NotificationStatus.FAILED


def test_one_notification_per_order_and_purpose() -> None:
    confirmation = Notification.create_id(ORDER, ORDER_CONFIRMATION)
    assert Notification.create_id(ORDER) == confirmation
    assert Notification.create_id(ORDER, "order_shipped") != confirmation
    assert Notification.create_id(uuid4()) != confirmation


def test_a_notification_needs_a_subject() -> None:
    given().when(
        lambda _: Notification.sent(ORDER, CUSTOMER, ORDER_CONFIRMATION, "email", "  ", "b")
    ).raises(ValidationError, field="subject")
