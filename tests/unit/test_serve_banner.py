"""What `saga serve` says when it starts, in lines that an 80-column terminal shows whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from infra.cli.serve_banner import banner
from infra.runtime import ROLES
from infra.settings import Settings
from tests.tokens import SECRET

BASE = "http://127.0.0.1:8000"
DATA_DIR = Path("/home/newcomer/projects/saga-shop/data")


def rendered(settings: Settings, roles: tuple[str, ...]) -> list[str]:
    console = Console(width=200, record=True)  # wide: each line must be short by itself
    for line in banner(settings, roles, BASE):
        console.print(line)
    return console.export_text().splitlines()


@pytest.mark.parametrize("auth", [{}, {"auth_jwt_secret": SECRET}, {"auth_mode": "off"}],
                         ids=["dev", "required", "off"])
@pytest.mark.parametrize("stores", [{"data_dir": DATA_DIR},
                                    {"database_url": "postgresql://postgres@db.internal:5432/saga"}],
                         ids=["embedded", "postgres"])
def test_every_line_of_the_start_banner_fits_80_columns(auth: dict[str, Any], stores: dict[str, Any]) -> None:
    lines = rendered(Settings(_env_file=None, **auth, **stores), ROLES)

    assert lines[0] == f"saga serving on {BASE} (every role)"
    assert any(f"{BASE}/graphql" in line for line in lines)
    assert any(line.startswith("auth: ") for line in lines)
    assert max(len(line) for line in lines) <= 80, lines


def test_a_worker_s_banner_names_its_roles_and_its_stores() -> None:
    settings = Settings(_env_file=None, database_url="postgresql://postgres@db.internal:5432/saga",
                        amqp_url="amqp://guest:guest@mq.internal:5672/")

    lines = rendered(settings, ("payments", "shipping"))

    assert lines == [f"saga serving on {BASE} (roles: payments, shipping)",
                     "stores: PostgreSQL, database saga on db.internal:5432"]
