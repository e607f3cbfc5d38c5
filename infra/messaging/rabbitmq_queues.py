"""The arguments of the queues the RabbitMQ bus declares, by queue type (QUEUE_TYPE).

Every queue of a topology is of one type: classic, or quorum (replicated across a
cluster's nodes). A retry queue holds a message for its delay and then dead-letters it
back to its consumer's queue; on quorum queues it does so at least once (the broker
keeps the message until its destination has confirmed it), not at most once.

A queue keeps the type it was first declared with: the broker refuses to declare it again
with another (PRECONDITION_FAILED, closing the channel). A system moved to another
QUEUE_TYPE over queues of the old one stops there with `QueueTypeError`, naming the queue
and the setting, rather than retry a declaration that can never succeed; the README's "Changing QUEUE_TYPE"
says how to move.
"""

from __future__ import annotations

from typing import Literal

from aio_pika.abc import AbstractChannel, AbstractQueue
from aio_pika.exceptions import ChannelPreconditionFailed
from pamqp.common import FieldTable

QueueType = Literal["classic", "quorum"]


class QueueTypeError(RuntimeError):
    """A queue on the broker is of another type than QUEUE_TYPE, or has other arguments."""

    def __init__(self, queue: str, queue_type: QueueType, said: str) -> None:
        other = "classic" if queue_type == "quorum" else "quorum"
        super().__init__(
            f"the broker keeps queue {queue!r} as it was first declared, not as a {queue_type} queue "
            f"(QUEUE_TYPE={queue_type}): set QUEUE_TYPE={other} to run on the queues as they are, or move "
            f"them as the README's \"Changing QUEUE_TYPE\" says (the broker said: {said})")
        self.queue = queue


async def declare_typed(
    channel: AbstractChannel, name: str, queue_type: QueueType, arguments: FieldTable
) -> AbstractQueue:
    """Declare a durable queue of `queue_type`; QueueTypeError when the broker holds it otherwise."""
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except ChannelPreconditionFailed as error:
        raise QueueTypeError(name, queue_type, str(error)) from None


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
