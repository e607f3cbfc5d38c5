"""The notifications context: telling the customer, once per order and purpose.

Not critical: a failed send is recorded as `Notification.Failed` and the saga
goes on. A notification that exists is never sent again, whatever its outcome,
so a redelivered or repeated request cannot spam the customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated
from uuid import UUID

from pydantic import Field

from commands.base import ContextApplication
from commands.command import Command, handles
from commands.simulation import Accepted, Notifier
from domain.base import NotFoundError
from domain.notification import ORDER_CONFIRMATION, Channel, Notification


class SendNotification(Command):
    order_id: UUID
    customer_id: UUID
    channel: Channel = "email"
    purpose: Annotated[str, Field(min_length=1, max_length=100)] = ORDER_CONFIRMATION
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=10_000)]


class NotificationNotFoundError(NotFoundError):
    code = "NOTIFICATION_NOT_FOUND"


class Notifications(ContextApplication):
    """Sends each order's messages through the notifier, at most once each."""

    name = "Notifications"

    def __init__(self, env: Mapping[str, str] | None = None, *, notifier: Notifier) -> None:
        super().__init__(env)
        self.notifier = notifier

    @handles(SendNotification)
    def send_notification(self, command: SendNotification) -> bool:
        """Send the message and record the outcome; an order's second request changes nothing."""

        def decide() -> list[Notification]:
            notification_id = Notification.create_id(command.order_id, command.purpose)
            if self.find(notification_id, Notification) is not None:  # as the batch loaded it, no query more
                return []
            return [self._send(notification_id, command)]

        return self.execute(command, decide, correlation_id=command.order_id)

    def order_streams(self, order_id: UUID) -> dict[str, UUID]:
        # The saga sends one purpose only: the order confirmation.
        return {"notification": Notification.create_id(order_id, ORDER_CONFIRMATION)}

    def get_notification(
        self, order_id: UUID, purpose: str = ORDER_CONFIRMATION, *, version: int | None = None
    ) -> Notification:
        notification_id = Notification.create_id(order_id, purpose)
        notification = self.find(notification_id, Notification, version=version)
        if notification is None:
            raise NotificationNotFoundError(
                f"no {purpose} notification for order {order_id}", field="order_id"
            )
        return notification

    def _send(self, notification_id: UUID, command: SendNotification) -> Notification:
        result = self.notifier.send(
            message_id=notification_id,
            customer_id=command.customer_id,
            channel=command.channel,
            subject=command.subject,
            body=command.body,
        )
        about = (command.order_id, command.customer_id, command.purpose, command.channel)
        if isinstance(result, Accepted):
            return Notification.sent(*about, subject=command.subject, body=command.body)
        return Notification.failed(*about, reason=result.reason)
