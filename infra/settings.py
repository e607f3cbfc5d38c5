"""Configuration from the environment (pydantic-settings).

`DATABASE_URL` selects PostgreSQL; without it the system runs embedded on SQLite
files under `DATA_DIR`. The old system's `DB_*` and `RABBITMQ_*` variables are
accepted too, so existing deployments keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    def parse(cls, url: str) -> PostgresDsn:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
            raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {parts.scheme!r}")
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


class Settings(BaseSettings):
    """Everything the system reads from its environment."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str | None = None
    amqp_url: str | None = None
    bus_namespace: str = Field("", description="prefix of every exchange and queue name")
    queue_type: Literal["classic", "quorum"] = Field(
        "classic", description="the type of every queue the system declares on RabbitMQ")
    data_dir: Path = Path("data")

    payment_failure_rate: float = Field(0.1, ge=0, le=1)
    shipping_failure_rate: float = Field(0.05, ge=0, le=1)
    notification_failure_rate: float = Field(0.02, ge=0, le=1)
    failure_seed: int | None = None
    step_timeout_seconds: float = Field(30, gt=0)

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

    @field_validator("log_format", "auth_mode", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "database_url", "amqp_url", "admin_token", "auth_mode", "auth_jwt_secret", "auth_jwt_public_key",
        "auth_jwt_algorithm", "auth_jwt_issuer", "auth_jwt_audience", "graphql_introspection",
        "data_key_secret", "data_key_file", mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

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
        if self.database_url and not self.database_url.startswith(("sqlite", "memory")):
            PostgresDsn.parse(self.database_url)  # fail at start-up, naming the variable
        return self

    @property
    def is_in_memory(self) -> bool:
        """`DATABASE_URL=memory://`: nothing is kept; for unit tests and trials."""
        return self.database_url is not None and self.database_url.startswith("memory")

    @property
    def postgres(self) -> PostgresDsn | None:
        if self.database_url is None or self.database_url.startswith(("sqlite", "memory")):
            return None
        return PostgresDsn.parse(self.database_url)

    @property
    def is_embedded(self) -> bool:
        return self.postgres is None
