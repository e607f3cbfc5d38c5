"""RabbitMQ messages as this system writes them: an envelope's message and headers, the
relay's batches of envelopes in one message, publishing a window of them, and the
headers a parked message carries.

Parking keeps the attempts, the error, when it was parked and where the message came
from in headers of our own (`x-…`), so a parked message can be listed and re-driven
with its broker-added `x-death` history left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pamqp.common import FieldTable, FieldValue
from pydantic import TypeAdapter, ValidationError

from commands.contract.messages import Envelope
from infra.messaging.bus import DeadLetter

ATTEMPT = "x-attempt"
LAST_ERROR = "x-last-error"
ERROR = "x-error"
ATTEMPTS = "x-attempts"
PARKED_AT = "x-parked-at"
DEAD_LETTER_ID = "x-dead-letter-id"
ORIGINAL_EXCHANGE = "x-original-exchange"
ORIGINAL_ROUTING_KEY = "x-original-routing-key"
PARK_HEADERS = (ATTEMPT, LAST_ERROR, ERROR, ATTEMPTS, PARKED_AT, DEAD_LETTER_ID)
_BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-")

BATCH_CONTENT_TYPE = "application/vnd.saga.envelopes+json"
ENVELOPES = "x-envelopes"
_ENVELOPE_LIST = TypeAdapter(list[Envelope])


def envelope_headers(envelope: Envelope) -> dict[str, FieldValue]:
    headers: dict[str, FieldValue] = {
        "kind": envelope.kind, "schema_version": envelope.schema_version,
        "source": envelope.source, "position": envelope.position,
    }
    if envelope.causation_id is not None:
        headers["causation_id"] = envelope.causation_id
    if envelope.trace:
        headers.update(envelope.trace)
    return headers


def envelope_message(envelope: Envelope, headers: FieldTable | None = None) -> aio_pika.Message:
    """One envelope as one message; `headers` replaces the ones it would carry."""
    return aio_pika.Message(
        envelope.model_dump_json().encode(),
        message_id=envelope.message_id,
        type=envelope.type,
        correlation_id=str(envelope.correlation_id) if envelope.correlation_id else None,
        timestamp=envelope.occurred_at,
        headers=envelope_headers(envelope) if headers is None else headers,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        app_id=envelope.source,
    )


def batch_message(envelopes: Sequence[Envelope]) -> aio_pika.Message:
    """Several envelopes with one routing key as one message (see the module docstring)."""
    first, last = envelopes[0], envelopes[-1]
    return aio_pika.Message(
        _ENVELOPE_LIST.dump_json(list(envelopes)),
        message_id=f"{first.message_id}..{last.message_id}",
        type=first.type if all(e.type == first.type for e in envelopes) else "batch",
        headers={ENVELOPES: len(envelopes), "source": first.source},
        content_type=BATCH_CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        app_id=first.source,
    )


async def publish_confirmed(
    channel: AbstractChannel, exchange: str, messages: Sequence[tuple[aio_pika.Message, str]],
    *, within: float,
) -> list[object]:
    """Mandatory messages (each with its routing key) published at once, each result once the broker
    has confirmed it: its confirm, or the error (`PublishError` for a message returned unroutable).

    aio-pika's `Exchange.publish` also waits, message by message, until the connection's
    writer has handed each to the socket before the next may start (aiormq's `wait`): a
    trip through the writer task a message, for nothing the confirm does not say. Here the
    messages are queued for the writer at once; a confirm still fails if the channel closes
    before the broker answers, and `within` seconds on.
    """
    underlay = await channel.get_underlay_channel()
    if not isinstance(underlay, aiormq.Channel):
        raise TypeError(f"not an aiormq channel: {underlay!r}")
    return await asyncio.gather(
        *(underlay.basic_publish(
            message.body, exchange=exchange, routing_key=routing_key, properties=message.properties,
            mandatory=True, timeout=within, wait=False,
        ) for message, routing_key in messages),
        return_exceptions=True,
    )


def copy_message(message: AbstractIncomingMessage, headers: FieldTable) -> aio_pika.Message:
    return aio_pika.Message(
        message.body,
        message_id=message.message_id,
        type=message.type,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        app_id=message.app_id,
    )


def own_headers(message: AbstractIncomingMessage) -> dict[str, FieldValue]:
    """The message's own headers, without the broker's dead-lettering history (it grows every hop)."""
    return {k: v for k, v in (message.headers or {}).items() if not k.startswith(_BROKER_HEADERS)}


def parse_message(message: AbstractIncomingMessage) -> list[Envelope] | str:
    """The envelopes a message carries, or why it cannot be read."""
    if message.content_type != BATCH_CONTENT_TYPE:
        envelope = parse(message.body)
        return envelope if isinstance(envelope, str) else [envelope]
    try:
        envelopes = _ENVELOPE_LIST.validate_json(message.body)
    except ValidationError as error:
        return str(error)
    return envelopes or "an empty batch"


def parse(body: bytes) -> Envelope | str:
    try:
        return Envelope.model_validate_json(body)
    except ValidationError as error:
        return str(error)


def attempt_of(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(ATTEMPT)
    return value if isinstance(value, int) and value > 0 else 1


def _text(value: FieldValue) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def letter_id(queue: str, message: AbstractIncomingMessage) -> str:
    # A message parked by hand has no id header; its message id still names it.
    value = (message.headers or {}).get(DEAD_LETTER_ID)
    return _text(value) if value else f"{queue}:{message.message_id}"


def dead_letter(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    envelope = parse(message.body)
    parked_at = headers.get(PARKED_AT)
    return DeadLetter(
        id=letter_id(queue, message),
        queue=queue,
        message_type=envelope.type if isinstance(envelope, Envelope) else message.type or "unknown",
        error=_text(headers.get(ERROR) or "parked without an error"),
        attempts=_attempt_count(headers.get(ATTEMPTS)),
        parked_at=datetime.fromisoformat(_text(parked_at)) if parked_at else datetime.now(UTC),
        envelope=envelope if isinstance(envelope, Envelope) else None,
        body=message.body,
    )


def _attempt_count(value: FieldValue) -> int:
    return value if isinstance(value, int) else 1
