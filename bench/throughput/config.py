"""What every part of the bench shares: the run's Config, the modes, failure rates, roles and queues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.messaging.consumers import SAGA_QUEUE
from infra.runtime import CONTEXT_ROLES
from infra.settings import PostgresDsn, Settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PEER = REPO.parent / "shared" / "bench" / "peer_es_saga.py"

WORKER_ROLES = (*CONTEXT_ROLES, "saga", "relay")
QUEUES = (*CONTEXT_ROLES, SAGA_QUEUE)
MODES = {
    "a": "embedded: SQLite + in-process bus, one process",
    "b": "PostgreSQL + RabbitMQ, every role in one process",
    "c": "PostgreSQL + RabbitMQ, one process per role",
    "b0": "mode b with personal data in clear and no hash chain: the baseline that prices them",
    "d": "one process per role, each context on a database of its own, quorum queues on a three-node cluster",
}
CONTEXT_DATABASES = ("ORDERS", "PAYMENTS", "INVENTORY", "SHIPPING", "NOTIFICATIONS", "SAGAS", "READ")
"""Mode d's databases: each `<NAME>_DATABASE_URL` of the settings."""

FAILURE_RATES = {
    name: Settings.model_fields[name].default
    for name in ("payment_failure_rate", "shipping_failure_rate", "notification_failure_rate")
}


@dataclass(frozen=True)
class Config:
    """One invocation's settings: its options, and the servers DATABASE_URL and AMQP_URL name."""

    orders: int
    runs: int
    placers: int
    timeout: float
    poll: float
    order_seed: int
    failure_seed: int
    database_url: str
    amqp_url: str
    profile: Path | None
    profile_gil: bool
    keep_logs: bool
    worker_pool_size: int | None

    @property
    def server(self) -> PostgresDsn:
        return PostgresDsn.parse(self.database_url)


class RunFailed(Exception):
    """The run could not be carried out (a worker died, the stores could not be made)."""

