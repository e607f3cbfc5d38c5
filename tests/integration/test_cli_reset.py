"""`saga reset`: the embedded default's stores deleted after a yes, and refused where it must not run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from infra.cli.main import app

runner = CliRunner()
SECRET = "a-secret-of-at-least-thirty-two-bytes!"


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A store as `saga migrate` leaves it, in DATA_DIR, on the embedded default in dev mode."""
    for name in ("DATABASE_URL", "AMQP_URL", "DB_HOST", "RABBITMQ_URL", "RABBITMQ_HOST", "AUTH_MODE",
                 "AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert saga("migrate").exit_code == 0
    return tmp_path / "data"


def saga(*args: str, answer: str | None = None, **env: str) -> Result:
    return runner.invoke(app, list(args), input=answer, env={"COLUMNS": "200", **env})


def files(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def test_reset_with_yes_deletes_every_store_and_says_what_comes_next(data_dir: Path) -> None:
    assert "orders.sqlite" in files(data_dir)

    result = saga("reset", "--yes")

    assert result.exit_code == 0, result.output
    assert f"in {data_dir}: the next `saga serve` starts afresh" in result.stderr
    assert files(data_dir) <= {"serve.lock"}


def test_reset_asks_first_and_deletes_on_a_yes(data_dir: Path) -> None:
    result = saga("reset", answer="y\n")

    assert result.exit_code == 0, result.output
    assert f"Delete every order, event and read model in {data_dir}? [y/N]" in result.output
    assert files(data_dir) <= {"serve.lock"}


@pytest.mark.parametrize("answer", ["n\n", "\n", ""], ids=["no", "the default", "no answer at all"])
def test_reset_answered_anything_but_yes_deletes_nothing_and_exits_1(data_dir: Path, answer: str) -> None:
    before = files(data_dir)

    result = saga("reset", answer=answer)

    assert result.exit_code == 1, result.output
    assert f"nothing was deleted in {data_dir}" in result.stderr
    assert files(data_dir) - {"serve.lock"} == before


@pytest.mark.parametrize("env", [{"AUTH_JWT_SECRET": SECRET}, {"AUTH_MODE": "off"}],
                         ids=["required", "off"])
def test_reset_is_refused_unless_in_dev_mode(data_dir: Path, env: dict[str, str]) -> None:
    before = files(data_dir)

    result = saga("reset", "--yes", **env)

    assert result.exit_code == 2, result.output
    mode = "off" if "AUTH_MODE" in env else "required"
    assert f"saga reset is for development, and AUTH_MODE resolves to {mode} here" in result.stderr
    assert files(data_dir) == before


@pytest.mark.parametrize(("url", "drop"), [
    ("postgresql://postgres@127.0.0.1:5432/shop",
     "drop the database shop on 127.0.0.1:5432 (DROP DATABASE shop)"),
    ("postgresql://postgres@127.0.0.1:5432/shop?schema=saga",
     "drop the schema saga in the database shop on 127.0.0.1:5432 (DROP SCHEMA saga CASCADE)"),
], ids=["database", "schema"])
def test_reset_is_refused_against_postgres_naming_what_to_drop_instead(
    data_dir: Path, url: str, drop: str
) -> None:
    before = files(data_dir)

    result = saga("reset", "--yes", DATABASE_URL=url)

    assert result.exit_code == 2, result.output
    assert f"DATABASE_URL is PostgreSQL: {drop} instead" in result.stderr
    assert files(data_dir) == before


def test_reset_of_a_folder_without_a_store_has_nothing_to_delete(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))

    result = saga("reset")

    assert result.exit_code == 0, result.output
    assert f"nothing to delete in {tmp_path / 'data'}" in result.stderr
    assert list(tmp_path.iterdir()) == []
