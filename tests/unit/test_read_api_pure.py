"""The API's pure parts: cursors, field paths of refusals, and the money and time scalars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import uuid4

import pytest
from graphql import FloatValueNode, StringValueNode
from strawberry.exceptions import StrawberryInputCoercionError

from commands.orders import PriceMismatchError
from domain.base import ValidationError
from projections.read_model import OrderCursor
from read_api.cursor import InvalidCursorError, decode_cursor, encode_cursor
from read_api.errors import camel_path, problem_from
from read_api.scalars import parse_datetime, parse_decimal, parse_decimal_literal, serialize_datetime
from read_api.services import placement_id


def test_a_cursor_comes_back_as_the_position_it_was_made_from() -> None:
    cursor = OrderCursor(created_at=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), id=uuid4())
    assert decode_cursor(encode_cursor(cursor)) == cursor


@pytest.mark.parametrize("garbage", ["", "abc", "bzE=", "o1|yesterday|x", "eDF8MjAyNnw1"])
def test_a_cursor_the_api_did_not_make_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(garbage)


def test_field_paths_are_spelled_as_the_graphql_client_sent_them() -> None:
    assert camel_path("items[0].product_id") == "items[0].productId"
    assert camel_path("shipping_address.zip_code") == "shippingAddress.zipCode"
    assert camel_path("customer_id") == "customerId"


def test_a_refusal_keeps_its_code_and_renames_the_field_to_the_argument() -> None:
    error = ValidationError("no such order", field="order_id")
    assert problem_from(error, renames={"order_id": "id"}).field == "id"
    mismatch = PriceMismatchError("price 1 differs", field="items[2].price")
    problem = problem_from(mismatch)
    assert (problem.code, problem.field) == ("PRICE_MISMATCH", "items[2].price")
    assert problem_from(ValidationError("bad", field="shipping_address.zip_code"), graphql=False).field == (
        "shipping_address.zip_code"
    )


def test_a_message_names_the_field_as_the_client_spelled_it() -> None:
    quantity = ValidationError("items[0].quantity: Input should be greater than or equal to 1",
                               field="items[0].quantity")
    zip_code = ValidationError("shipping_address.zip_code: String should have at least 1 character",
                               field="shipping_address.zip_code")
    order = ValidationError("order_id: Input should be a valid UUID", field="order_id")

    assert problem_from(zip_code).message == (
        "shippingAddress.zipCode: String should have at least 1 character")
    assert problem_from(zip_code, graphql=False).message == zip_code.message
    assert problem_from(quantity).message == quantity.message
    assert problem_from(order, renames={"order_id": "id"}).message == "id: Input should be a valid UUID"
    whole = ValidationError("items: items[0].product_id appears twice", field="items")
    assert problem_from(whole).message == whole.message  # only the path itself, not a longer one


def test_money_typed_in_the_query_text_keeps_its_digits() -> None:
    assert parse_decimal_literal(FloatValueNode(value="49.99")) == Decimal("49.99")
    assert parse_decimal_literal(StringValueNode(value="1299.99")) == Decimal("1299.99")


def test_money_sent_as_a_float_or_nonsense_is_refused() -> None:
    for value in (49.99, "NaN", "forty", True, None):
        with pytest.raises(StrawberryInputCoercionError):
            parse_decimal(value)
    assert parse_decimal("2599.98") == Decimal("2599.98")
    assert parse_decimal(7) == Decimal(7)


def test_times_are_written_in_utc_and_read_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert serialize_datetime(datetime(2026, 3, 1, 14, 0, tzinfo=plus_two)) == "2026-03-01T12:00:00Z"
    assert parse_datetime("2026-03-01T12:00:00Z") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_datetime("2026-03-01T12:00:00") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(StrawberryInputCoercionError):
        parse_datetime("last tuesday")


def test_an_idempotency_key_stands_for_one_placement_per_customer() -> None:
    customer, other = str(uuid4()), str(uuid4())
    assert placement_id(customer, "key-1") == placement_id(customer, "key-1")
    assert placement_id(customer, "key-1") != placement_id(other, "key-1")
    with pytest.raises(ValidationError) as refused:
        placement_id(customer, "   ")
    assert refused.value.field == "idempotency_key"
