"""The notifications context's command handler, over an in-memory store and a fake notifier."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.command import parse_command
from commands.notifications import (
    NotificationNotFoundError,
    Notifications,
    SendNotification,
)
from domain.base import ValidationError
from domain.notification import Notification, NotificationStatus
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.dsl import ev, given
from tests.fakes import FakeNotifier


@pytest.fixture
def notifier() -> FakeNotifier:
    return FakeNotifier()


@pytest.fixture
def notifications(memory_settings: Settings, notifier: FakeNotifier) -> Iterator[Notifications]:
    app = Notifications(application_env(memory_settings, "Notifications"), notifier=notifier)
    yield app
    app.close()


def send(order_id: UUID | None = None, **extra: Any) -> SendNotification:
    return SendNotification(
        order_id=order_id or uuid4(), customer_id=uuid4(), subject="Order confirmed",
        body="Thank you for your order.", **extra,
    )


def test_a_sent_notification_reaches_the_customer_and_is_recorded(
    notifications: Notifications, notifier: FakeNotifier
) -> None:
    command = send()
    given(app=notifications).when(command).then(
        ev(Notification.Sent, id=Notification.create_id(command.order_id),
           order_id=command.order_id, customer_id=command.customer_id, channel="email",
           subject="Order confirmed", body="Thank you for your order.")
    )
    assert notifier.outbox == [(command.customer_id, "email", "Order confirmed")]


def test_a_failed_send_is_recorded_not_raised(memory_settings: Settings) -> None:
    app = Notifications(application_env(memory_settings, "Notifications"),
                        notifier=FakeNotifier(fail="mailbox unavailable"))
    command = send(channel="sms")
    given(app=app).when(command).then(
        ev(Notification.Failed, order_id=command.order_id, channel="sms",
           reason="mailbox unavailable")
    )
    assert app.get_notification(command.order_id).status is NotificationStatus.FAILED


def test_an_order_gets_one_confirmation_however_often_it_is_asked_for(
    notifications: Notifications, notifier: FakeNotifier
) -> None:
    command = send()
    notifications.send_notification(command)
    given(app=notifications).when(command).then_nothing()
    given(app=notifications).when(send(command.order_id)).then_nothing()
    assert len(notifier.outbox) == 1


def test_another_purpose_is_another_message(
    notifications: Notifications, notifier: FakeNotifier
) -> None:
    command = send()
    notifications.send_notification(command)
    given(app=notifications).when(send(command.order_id, purpose="order_shipped")).then(
        ev(Notification.Sent, purpose="order_shipped")
    )
    assert len(notifier.outbox) == 2


@pytest.mark.parametrize(
    ("data", "field"),
    [({"subject": ""}, "subject"), ({"channel": "pigeon"}, "channel"), ({"body": ""}, "body")],
)
def test_a_malformed_request_names_the_field(data: dict[str, Any], field: str) -> None:
    raw = {"order_id": str(uuid4()), "customer_id": str(uuid4()), "subject": "s", "body": "b",
           **data}
    with pytest.raises(ValidationError) as raised:
        parse_command(SendNotification, raw)
    assert raised.value.field == field


def test_reading_an_unsent_notification_is_a_named_error(notifications: Notifications) -> None:
    with pytest.raises(NotificationNotFoundError):
        notifications.get_notification(uuid4())
