"""Credentials for tests of the permission layer: settings that require tokens, and tokens to present."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from infra.settings import Settings
from read_api.identity import ADMIN, CUSTOMER, OPERATOR, mint_token

SECRET = "a-test-secret-long-enough-for-every-hmac-algorithm-pyjwt-knows-0123456789"
ADMIN_TOKEN = "s3cret-admin-token"


def requiring_tokens(settings: Settings, **more: object) -> Settings:
    """The same settings in `required` mode: an HS256 secret, and the opaque admin token."""
    return settings.model_copy(update={"auth_jwt_secret": SECRET, "auth_mode": "required",
                                       "admin_token": ADMIN_TOKEN, **more})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def customer(settings: Settings, customer_id: UUID, *, ttl: timedelta = timedelta(hours=1)) -> dict[str, str]:
    return bearer(mint_token(settings, subject=str(customer_id), scopes=[CUSTOMER], ttl=ttl))


def operator(settings: Settings) -> dict[str, str]:
    return bearer(mint_token(settings, subject="ops-1", scopes=[OPERATOR], ttl=timedelta(hours=1)))


def admin(settings: Settings) -> dict[str, str]:
    return bearer(mint_token(settings, subject="admin-1", scopes=[OPERATOR, ADMIN], ttl=timedelta(hours=1)))
