"""The `saga` command line, through typer's runner."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from infra.bootstrap import bootstrap
from infra.cli import app
from infra.settings import Settings

runner = CliRunner()


def use(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.delenv("DB_HOST", raising=False)
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "migrate", "seed"):
        assert command in result.output


def test_migrate_then_seed_twice_lists_the_catalogue_once(
    store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, store_settings)
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    first = runner.invoke(app, ["seed"])
    second = runner.invoke(app, ["seed"])
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "5 product(s) listed" in first.output
    assert "0 product(s) listed" in second.output
    with bootstrap(store_settings.model_copy(update={"create_table": False})) as system:
        stocks = system.inventory.list_products()
    assert len(stocks) == 5
    assert sum(stock.on_hand for stock in stocks) == 50 + 100 + 75 + 30 + 25


def test_services_started_without_tables_after_migrate_work_against_postgres(
    postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, postgres_settings)
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    with bootstrap(postgres_settings.model_copy(update={"create_table": False})) as system:
        assert system.check() == {"status": "ok"}
