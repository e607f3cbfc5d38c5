"""The GraphQL subscription: an order pushed on every change, over graphql-transport-ws."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from uuid import UUID

import strawberry

from read_api.context import Context
from read_api.queries import argument_id
from read_api.types import Info, Order

TERMINAL = ("COMPLETED", "CANCELLED")
SAGA_FINISHED = ("COMPLETED", "COMPENSATED")
async def has_settled(context: Context, order_id: UUID, status: str) -> bool:
    """The order has ended and its saga has recorded the end too: nothing more will change."""
    if status not in TERMINAL:
        return False
    saga = await context.loaders.sagas.load(order_id)
    return saga is not None and saga.status in SAGA_FINISHED


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The order as projected, now and on every change (its row, payment, shipment or saga); "
                    "completes once the order and its saga have ended"
    )
    async def order_updated(self, info: Info, id: strawberry.ID) -> AsyncGenerator[Order, None]:
        order_id = argument_id(id, "id")
        context = info.context
        with context.services.subscriptions.held_for(context):
            changes = context.services.read_model.order_changes(order_id)
            try:
                async for row in changes:
                    # Another customer's order never shows, exactly as one that does not exist yet.
                    if not context.access.sees_order_of(row.customer_id):
                        continue
                    # Each push is a new state: answer its nested fields afresh, not from the last push's.
                    context.refresh()
                    context.loaders.remember(row)
                    yield Order.from_row(row)
                    if await has_settled(context, order_id, row.status):
                        return
            finally:
                close = getattr(changes, "aclose", None)
                if close is not None:
                    await close()
