"""The Notification aggregate (notifications context): one message per order and purpose.

Notifications are not critical: a failed one is recorded and the saga goes on.
Its id derives from the order and the purpose, so a repeated request finds the
first attempt and the customer gets one confirmation, not several.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import Aggregate, ValidationError, kept_ids

Channel = Literal["email", "sms"]
ORDER_CONFIRMATION = "order_confirmation"


class NotificationStatus(StrEnum):
    SENT = "SENT"
    FAILED = "FAILED"


class Notification(Aggregate):
    """One message to a customer about an order, sent or failed."""

    class Sent(Aggregate.Created):
        order_id: UUID
        customer_id: UUID
        purpose: str
        channel: Channel
        subject: str
        body: str

        def apply(self, notification: Notification) -> None:
            notification.status = NotificationStatus.SENT
            notification.subject = self.subject
            notification.body = self.body

    class Failed(Aggregate.Created):
        order_id: UUID
        customer_id: UUID
        purpose: str
        channel: Channel
        reason: str

        def apply(self, notification: Notification) -> None:
            notification.status = NotificationStatus.FAILED
            notification.failure_reason = self.reason

    @staticmethod
    @kept_ids
    def create_id(order_id: UUID, purpose: str = ORDER_CONFIRMATION) -> UUID:
        return uuid5(NAMESPACE_URL, f"/notifications/{order_id}/{purpose}")

    @classmethod
    def sent(
        cls, order_id: UUID, customer_id: UUID, purpose: str, channel: Channel,
        subject: str, body: str,
    ) -> Notification:
        """Record a message the notifier accepted."""
        _require_text(subject, "subject")
        return cls._open(
            cls.Sent, order_id, customer_id, purpose, channel, subject=subject, body=body
        )

    @classmethod
    def failed(
        cls, order_id: UUID, customer_id: UUID, purpose: str, channel: Channel, reason: str
    ) -> Notification:
        """Record a message that could not be delivered; nobody is blocked by it."""
        return cls._open(cls.Failed, order_id, customer_id, purpose, channel, reason=reason)

    @classmethod
    def _open(
        cls, event_class: type[Aggregate.Created], order_id: UUID, customer_id: UUID,
        purpose: str, channel: Channel, **fields: Any,
    ) -> Notification:
        _require_text(purpose, "purpose")
        notification: Notification = cls._create(
            event_class,
            id=cls.create_id(order_id, purpose),
            order_id=order_id,
            customer_id=customer_id,
            purpose=purpose,
            channel=channel,
            **fields,
        )
        return notification

    def __init__(self, order_id: UUID, customer_id: UUID, purpose: str, channel: Channel) -> None:
        # The creation event's apply() sets the outcome.
        self.order_id = order_id
        self.customer_id = customer_id
        self.purpose = purpose
        self.channel = channel
        self.status: NotificationStatus
        self.subject: str | None = None
        self.body: str | None = None
        self.failure_reason: str | None = None


def _require_text(value: str, field: str) -> None:
    if not value.strip():
        raise ValidationError(f"{field} must not be blank", field=field)
