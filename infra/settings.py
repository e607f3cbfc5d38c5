"""Configuration from the environment (pydantic-settings).

`DATABASE_URL` selects PostgreSQL; without it the system runs embedded on SQLite
files under `DATA_DIR`. The old system's `DB_*` and `RABBITMQ_*` variables are
accepted too, so existing deployments keep working.

Each context may keep its events in a database of its own, `<CONTEXT>_DATABASE_URL`
(`ORDERS_`, ..., `SAGAS_` for the saga, `READ_` for the read store), falling back to
`DATABASE_URL`, so that a context can move to its own server without the others
noticing. Either every context is on PostgreSQL or none is: the embedded default
keeps its files, lock and bus in one DATA_DIR, and a mix would split what one
`saga reset` or one `saga serve` lock must cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.affinity import parse_cpus
from infra.amqp_nodes import broker_urls
from read_api.identity import AuthConfigError, resolve_mode, verification_key


@dataclass(frozen=True)
class PostgresDsn:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    schema_name: str | None = None

    @classmethod
    def parse(cls, url: str, variable: str = "DATABASE_URL") -> PostgresDsn:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
            raise ValueError(f"{variable} must be a postgresql:// URL, got {parts.scheme!r}")
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            dbname=unquote(parts.path.lstrip("/")) or "postgres",
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            schema_name=query.get("schema"),
        )

    @property
    def url(self) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    @property
    def connect_args(self) -> dict[str, Any]:
        """asyncpg's keywords for this server and database (`asyncpg.connect(**dsn.connect_args)`)."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password or None,
                "database": self.dbname}


APPLICATION_CONTEXTS = {
    "Orders": "orders", "Payments": "payments", "Inventory": "inventory", "Shipping": "shipping",
    "Notifications": "notifications", "OrderFulfillment": "sagas",
}
"""The context, and so the `<CONTEXT>_DATABASE_URL`, of each application by its name."""
READ_STORE = "read"
DATABASE_CONTEXTS = (*APPLICATION_CONTEXTS.values(), READ_STORE)


def _on_disk(url: str | None) -> bool:
    return url is None or url.startswith(("sqlite", "memory"))


class Settings(BaseSettings):
    """Everything the system reads from its environment."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = None
    orders_database_url: str | None = Field(None, description="the Orders context's; unset: DATABASE_URL")
    payments_database_url: str | None = Field(None, description="the Payments context's; unset: DATABASE_URL")
    inventory_database_url: str | None = Field(None, description="Inventory's; unset: DATABASE_URL")
    shipping_database_url: str | None = Field(None, description="the Shipping context's; unset: DATABASE_URL")
    notifications_database_url: str | None = Field(None, description="Notifications'; unset: DATABASE_URL")
    sagas_database_url: str | None = Field(None, description="OrderFulfillment's; unset: DATABASE_URL")
    read_database_url: str | None = Field(None, description="the read store's; unset: DATABASE_URL")
    amqp_url: str | None = None
    bus_namespace: str = Field("", description="prefix of every exchange and queue name")
    queue_type: Literal["classic", "quorum"] = Field(
        "quorum", description="the type of every queue the system declares on RabbitMQ")
    data_dir: Path = Path("data")

    payment_failure_rate: float = Field(0.1, ge=0, le=1)
    shipping_failure_rate: float = Field(0.05, ge=0, le=1)
    notification_failure_rate: float = Field(0.02, ge=0, le=1)
    failure_seed: int | None = None
    step_timeout_seconds: float = Field(30, gt=0)
    compensation_attempts: int = Field(
        5, ge=1, description="times an unconfirmed undoing is sent before its saga NEEDS_ATTENTION")
    compensation_backoff_seconds: float = Field(
        30, gt=0, description="wait for the first attempt at an undoing; each further attempt doubles it")

    admin_token: str | None = Field(None, description="an opaque bearer token that is operator and admin")
    auth_mode: Literal["dev", "required", "off"] | None = Field(
        None, description="unset: required when a token key is configured, else dev (loopback only)")
    auth_jwt_secret: str | None = Field(None, description="HS256 key of the bearer tokens")
    auth_jwt_public_key: str | None = Field(None, description="PEM (or a path to it) of an RS256/ES256 key")
    auth_jwt_algorithm: str | None = Field(None, description="unset: HS256, RS256 or ES256 by the key")
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    graphql_introspection: bool | None = Field(None, description="unset: on in dev and off, off in required")
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = Field("text", description="json: one JSON object per log line")
    host: str = "127.0.0.1"
    port: int = 8000

    personal_data_encryption: bool = Field(
        True, description="false: store personal fields in clear text (they cannot then be forgotten)")
    data_key_secret: str | None = Field(
        None, description="master secret that wraps each customer's data key (unset: kept unwrapped)")
    data_key_file: Path | None = Field(None, description="a file holding the master secret")

    create_table: bool = True
    cpu_affinity: str = Field("", description=(
        "one: a serving process's threads on one CPU; any: wherever the scheduler puts them; or CPU "
        "numbers such as 0,2 (unset: one CPU for a process of every role and for each API worker, "
        "else any)"))
    aggregate_cache_size: int = Field(10_000, ge=1)
    # Connections each application keeps open (and may grow by the overflow under load):
    # every role process builds every application, so a small floor keeps many processes
    # within the server's connection limit.
    postgres_pool_size: int = 1
    postgres_max_overflow: int = 9
    postgres_lock_timeout: int = 5

    # The old system's names, folded into the new ones below.
    db_host: str | None = None
    db_port: int = 5432
    db_user: str = "postgres"
    db_password: str = ""
    db_name: str = "postgres"
    rabbitmq_url: str | None = None
    rabbitmq_host: str | None = None
    rabbitmq_port: int = 5672
    rabbitmq_user: str = "guest"
    rabbitmq_password: str = "guest"

    @field_validator("cpu_affinity")
    @classmethod
    def _cpus(cls, value: str) -> str:
        return parse_cpus(value)

    @field_validator("log_format", "auth_mode", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "database_url", "orders_database_url", "payments_database_url", "inventory_database_url",
        "shipping_database_url", "notifications_database_url", "sagas_database_url", "read_database_url",
        "amqp_url", "admin_token", "auth_mode", "auth_jwt_secret", "auth_jwt_public_key",
        "auth_jwt_algorithm", "auth_jwt_issuer", "auth_jwt_audience", "graphql_introspection",
        "data_key_secret", "data_key_file", mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        value = None if isinstance(value, str) and not value.strip() else value
        if value is not None and info.field_name and info.field_name.endswith("_database_url") \
                and info.field_name != "database_url":
            PostgresDsn.parse(value, info.field_name.upper())  # fail at start-up, naming the variable
        return value

    @model_validator(mode="after")
    def _accept_old_names(self) -> Settings:
        if self.database_url is None and self.db_host:
            auth = self.db_user + (f":{self.db_password}" if self.db_password else "")
            self.database_url = f"postgresql://{auth}@{self.db_host}:{self.db_port}/{self.db_name}"
        if self.amqp_url is None and self.rabbitmq_url:
            self.amqp_url = self.rabbitmq_url
        if self.amqp_url is None and self.rabbitmq_host:
            self.amqp_url = (
                f"amqp://{self.rabbitmq_user}:{self.rabbitmq_password}"
                f"@{self.rabbitmq_host}:{self.rabbitmq_port}/"
            )
        try:
            resolve_mode(self)
            verification_key(self)
        except AuthConfigError as error:
            raise ValueError(str(error)) from None
        if self.amqp_url:
            broker_urls(self.amqp_url)  # fail at start-up, naming the variable and the node at fault
        if not _on_disk(self.database_url):
            PostgresDsn.parse(self.database_url or "")  # fail at start-up, naming the variable
        own = [f"{c.upper()}_DATABASE_URL" for c in DATABASE_CONTEXTS if getattr(self, f"{c}_database_url")]
        if own and _on_disk(self.database_url) and len(own) < len(DATABASE_CONTEXTS):
            raise ValueError(
                f"{', '.join(own)} on PostgreSQL beside contexts on SQLite (DATABASE_URL unset or not "
                "PostgreSQL) is not supported: set DATABASE_URL to PostgreSQL too, the database of every "
                "context without its own")
        return self

    @property
    def is_in_memory(self) -> bool:
        """`DATABASE_URL=memory://`: nothing is kept; for unit tests and trials."""
        return self.database_url is not None and self.database_url.startswith("memory")

    @property
    def postgres(self) -> PostgresDsn | None:
        """DATABASE_URL's database: that of every context without one of its own."""
        if _on_disk(self.database_url):
            return None
        return PostgresDsn.parse(self.database_url or "")

    def database_variable(self, name: str) -> str:
        """The variable choosing the database of an application ("Payments") or of the read store ("read").

        A name that is no context's (a test's own application) has DATABASE_URL's.
        """
        context = APPLICATION_CONTEXTS.get(name, name)
        own = f"{context}_database_url"
        return own.upper() if own in type(self).model_fields and getattr(self, own) else "DATABASE_URL"

    def database_of(self, name: str) -> PostgresDsn | None:
        """The PostgreSQL database of an application or of the read store ("read"); None when embedded."""
        variable = self.database_variable(name)
        url = getattr(self, variable.lower())
        return None if _on_disk(url) else PostgresDsn.parse(url, variable)

    @property
    def read_database(self) -> PostgresDsn | None:
        return self.database_of(READ_STORE)

    @property
    def databases(self) -> dict[PostgresDsn, list[str]]:
        """Each distinct PostgreSQL database (and schema) in use, with the variables that choose it."""
        found: dict[PostgresDsn, list[str]] = {}
        for context in DATABASE_CONTEXTS:
            if (dsn := self.database_of(context)) is not None:
                variables = found.setdefault(dsn, [])
                if (variable := self.database_variable(context)) not in variables:
                    variables.append(variable)
        return found

    @property
    def is_embedded(self) -> bool:
        return not self.databases
