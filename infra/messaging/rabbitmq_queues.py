"""The arguments of the queues the RabbitMQ bus declares, by queue type (QUEUE_TYPE).

Every queue of a topology is of one type: classic, or quorum (replicated across a
cluster's nodes). A retry queue holds a message for its delay and then dead-letters it
back to its consumer's queue; on quorum queues it does so at least once (the broker
keeps the message until its destination has confirmed it), not at most once.
"""

from __future__ import annotations

from typing import Literal

from pamqp.common import FieldTable

QueueType = Literal["classic", "quorum"]


def queue_arguments(queue_type: QueueType) -> FieldTable:
    """A consumer queue's, or a parking queue's."""
    return {} if queue_type == "classic" else {"x-queue-type": queue_type}


def retry_arguments(queue_type: QueueType, back_to: str, delay: float) -> FieldTable:
    """A retry queue's: hold each message `delay` seconds, then move it back to the queue `back_to`."""
    arguments: FieldTable = {"x-message-ttl": round(delay * 1000), "x-dead-letter-exchange": "",
                             "x-dead-letter-routing-key": back_to, **queue_arguments(queue_type)}
    if queue_type == "quorum":
        arguments.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    return arguments
