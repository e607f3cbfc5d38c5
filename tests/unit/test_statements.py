"""A statement rendered once is the statement: the same bytes, whatever asks, and whatever is added to it."""

from __future__ import annotations

from psycopg import sql

from infra.eventstore.statements import Rendered

STATEMENT = sql.SQL(
    "SELECT {columns} FROM {schema}.{table} WHERE id = %s AND topic = ANY(%b::text[])"
).format(
    columns=sql.SQL(", ").join([sql.Identifier("id"), sql.Identifier("Odd Column")]),
    schema=sql.Identifier("shop schema"), table=sql.Identifier('orders "events"'),
)


def test_a_rendered_statement_has_the_bytes_of_the_statement() -> None:
    rendered = Rendered(STATEMENT)
    assert rendered.as_bytes(None) == STATEMENT.as_bytes(None)
    assert rendered.as_bytes(None) == (
        b'SELECT "id", "Odd Column" FROM "shop schema"."orders ""events""" WHERE id = %s'
        b" AND topic = ANY(%b::text[])"
    )
    assert rendered.as_string(None) == STATEMENT.as_string(None)
    assert isinstance(rendered, sql.Composed)


def test_what_is_added_to_a_rendered_statement_is_rendered_with_it() -> None:
    # The library extends some of its statements per call (`select_events` adds its conditions).
    longer = Rendered(STATEMENT) + sql.SQL(" ORDER BY {}").format(sql.Identifier("Odd Column"))
    assert longer.as_bytes(None) == STATEMENT.as_bytes(None) + b' ORDER BY "Odd Column"'
