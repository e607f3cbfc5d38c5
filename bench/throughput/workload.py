"""The workload: N random orders from a fixed seed, and the stock they need."""

from __future__ import annotations

import random
import uuid

from commands.inventory import SEED_CATALOGUE, Restock
from commands.orders import OrderItem, PlaceOrder
from domain.stock import MAX_RESTOCK
from domain.values import Address
from infra.bootstrap import System

ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")


def make_orders(n: int, seed: int) -> list[PlaceOrder]:
    """N orders of 1-2 distinct seed products, 1-3 units each; the same for a given seed."""
    rng = random.Random(seed)
    products = [p.product_id for p in SEED_CATALOGUE]
    commands = []
    for _ in range(n):
        lines = rng.sample(products, rng.randint(1, 2))
        commands.append(PlaceOrder(
            command_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            customer_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            items=[OrderItem(product_id=p, quantity=rng.randint(1, 3)) for p in lines],
            shipping_address=ADDRESS,
        ))
    return commands


def stock_up(system: System, n: int) -> None:
    """List the seed catalogue and add more than N orders can take (3 units a line at most)."""
    system.inventory.seed()
    top_up = 3 * n + 100
    for product in SEED_CATALOGUE:
        left = top_up
        while left > 0:
            quantity = min(left, MAX_RESTOCK)
            system.inventory.restock(Restock(product_id=product.product_id, quantity=quantity))
            left -= quantity
