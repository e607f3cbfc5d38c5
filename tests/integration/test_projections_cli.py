"""`projections status` and `projections rebuild`, as the `saga` command line mounts them."""

from __future__ import annotations

from uuid import uuid4

import pytest
from typer.testing import CliRunner

from commands.orders import PlaceOrder
from infra.bootstrap import bootstrap
from infra.cli.projections import projections_cli
from infra.settings import Settings
from projections import tracking
from projections.rebuild import Rebuild
from tests.saga_harness import ADDRESS, MOUSE, hear_catalogue

runner = CliRunner()


def test_status_shows_the_lag_and_a_rebuild_brings_it_to_nothing(sqlite_settings: Settings) -> None:
    with bootstrap(sqlite_settings) as system:
        system.inventory.seed()
        hear_catalogue(system)  # as the relay and Orders' consumer would
        heard = system.orders.recorder.max_notification_id() or 0  # Orders' log opens with its catalogue
        items = [{"product_id": MOUSE, "quantity": 1}]
        system.orders.place_order(PlaceOrder(customer_id=uuid4(), items=items, shipping_address=ADDRESS))
    cli = projections_cli(lambda: bootstrap(sqlite_settings))

    before = runner.invoke(cli, ["status"])
    assert before.exit_code == 0, before.output
    assert lag_of(before.output, "order_summary") == heard + 1
    assert lag_of(before.output, "stock_levels") == 10

    rebuilt = runner.invoke(cli, ["rebuild", "order_summary"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt and swapped in: order_summary" in rebuilt.output

    after = runner.invoke(cli, ["status"])
    assert (lag_of(after.output, "order_summary"), lag_of(after.output, "stock_levels")) == (0, 10)
    assert runner.invoke(cli, ["rebuild"]).exit_code == 0
    assert lag_of(runner.invoke(cli, ["status"]).output, "stock_levels") == 0


def test_rebuilding_an_unknown_projection_names_the_ones_there_are(sqlite_settings: Settings) -> None:
    result = runner.invoke(projections_cli(lambda: bootstrap(sqlite_settings)), ["rebuild", "nope"])

    assert result.exit_code == 2
    assert "order_summary" in result.output


def lag_of(table: str, projection: str) -> int:
    """The lag column of a projection's row in the status table."""
    line = next(line for line in table.splitlines() if f" {projection} " in line)
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    return int(cells[2])


def test_a_rebuild_overtaken_by_another_of_the_same_projection_stops_with_one_line(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with bootstrap(sqlite_settings) as system:
        system.inventory.seed()
        hear_catalogue(system)  # as the relay and Orders' consumer would
    prepare = Rebuild.prepare

    async def prepared_then_overtaken(self: Rebuild) -> None:
        await prepare(self)
        # Meanwhile another rebuild of the same projection replays its first batch.
        async with self.store.transaction() as tx:
            await tracking.advance(tx, self.shadow.tracking_name, "Inventory", 5)

    monkeypatch.setattr(Rebuild, "prepare", prepared_then_overtaken)
    result = runner.invoke(projections_cli(lambda: bootstrap(sqlite_settings)),
                           ["rebuild", "stock_levels", "--jobs", "1"])

    assert result.exit_code == 1, result.output
    assert "another rebuild of stock_levels is running" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
