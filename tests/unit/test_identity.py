"""Who a caller is: modes, bearer tokens and what each bad token is told."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from freezegun import freeze_time

from infra.settings import Settings
from read_api.identity import (
    ADMIN_TOKEN_HOLDER,
    ANONYMOUS,
    DEVELOPER,
    AuthenticationError,
    Authenticator,
    AuthMode,
    is_loopback,
    mint_token,
)
from tests.tokens import ADMIN_TOKEN, SECRET


def now() -> datetime:
    return datetime.now(UTC)

OPS = {"sub": "ops", "scope": "operator"}


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, database_url="memory://", **values)


def signed(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode({"exp": now() + timedelta(hours=1), **claims}, key, algorithm=algorithm)


def authenticator(**values: Any) -> Authenticator:
    return Authenticator.from_settings(settings(auth_jwt_secret=SECRET, admin_token=ADMIN_TOKEN, **values))


def pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_without_a_key_the_mode_is_dev_and_every_caller_is_operator_and_admin() -> None:
    dev = Authenticator.from_settings(settings())
    assert dev.mode is AuthMode.DEV
    assert dev.principal(None) is DEVELOPER
    assert dev.principal("Bearer anything") is DEVELOPER


def test_with_a_key_the_mode_is_required_and_no_token_is_anonymous() -> None:
    required = authenticator()
    assert required.mode is AuthMode.REQUIRED
    assert required.principal(None) is ANONYMOUS
    assert required.principal("  ") is ANONYMOUS


def test_off_trusts_everyone_even_with_a_key() -> None:
    off = Authenticator.from_settings(settings(auth_jwt_secret=SECRET, auth_mode="off"))
    assert off.principal(None) is DEVELOPER


@pytest.mark.parametrize(("values", "named"), [
    ({"auth_mode": "required"}, "AUTH_JWT_SECRET"),
    ({"auth_mode": "strict"}, "auth_mode"),
    ({"auth_jwt_secret": SECRET, "auth_jwt_public_key": "x"}, "AUTH_JWT_PUBLIC_KEY"),
    ({"auth_jwt_public_key": "/nowhere/key.pem"}, "AUTH_JWT_PUBLIC_KEY"),
    ({"auth_jwt_secret": SECRET, "auth_jwt_algorithm": "RS256"}, "AUTH_JWT_ALGORITHM"),
])
def test_contradictory_settings_are_refused_at_start_naming_the_variable(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        settings(**values)


def test_a_customer_token_names_the_customer_and_its_scope() -> None:
    customer_id = uuid4()
    principal = authenticator().principal(f"Bearer {signed({'sub': str(customer_id), 'scope': 'customer'})}")
    assert principal.customer_id == customer_id
    assert principal.has("customer") and not principal.has("operator")


def test_the_admin_token_is_operator_and_admin() -> None:
    assert authenticator().principal(f"Bearer {ADMIN_TOKEN}") is ADMIN_TOKEN_HOLDER
    assert authenticator().principal(f"bearer {ADMIN_TOKEN}") is ADMIN_TOKEN_HOLDER


def test_unknown_scopes_are_dropped() -> None:
    principal = authenticator().principal(f"Bearer {signed({'sub': 'ops', 'scope': 'operator root'})}")
    assert principal.scopes == {"operator"}


def _encoded(part: dict[str, Any]) -> str:
    return jwt.utils.base64url_encode(json.dumps(part).encode()).decode()


def _none_token() -> str:
    claims = {"sub": str(uuid4()), "scope": "operator", "exp": int((now() + timedelta(hours=1)).timestamp())}
    return f"{_encoded({'alg': 'none', 'typ': 'JWT'})}.{_encoded(claims)}."


def hand_signed_hs256(claims: dict[str, Any], key: bytes) -> str:
    """What PyJWT refuses to make: an HS256 token keyed with a public key's text."""
    signing_input = f"{_encoded({'alg': 'HS256', 'typ': 'JWT'})}.{_encoded(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{jwt.utils.base64url_encode(signature).decode()}"


BAD: dict[str, Callable[[], str]] = {
    "not bearer": lambda: f"Basic {ADMIN_TOKEN}",
    "bare token": lambda: ADMIN_TOKEN,
    "empty bearer": lambda: "Bearer ",
    "malformed": lambda: "Bearer not.a.jwt",
    "wrong secret": lambda: "Bearer " + signed(OPS, key="another-secret-" * 5),
    "alg none": lambda: "Bearer " + _none_token(),
    "another algorithm": lambda: "Bearer " + signed(OPS, algorithm="HS512"),
    "expired": lambda: "Bearer " + signed({**OPS, "exp": now() - timedelta(seconds=5)}),
    "no exp": lambda: "Bearer " + jwt.encode(OPS, SECRET, algorithm="HS256"),
    "customer sub not an id": lambda: "Bearer " + signed({"sub": "alice", "scope": "customer"}),
    "scope not a string": lambda: "Bearer " + signed({"sub": "ops", "scope": ["operator"]}),
}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_every_bad_token_is_refused(bad: str) -> None:
    with pytest.raises(AuthenticationError):
        authenticator().principal(BAD[bad]())


def test_issuer_and_audience_are_checked_when_configured() -> None:
    checking = authenticator(auth_jwt_issuer="https://id.example", auth_jwt_audience="saga-shop")
    good = signed({"sub": "ops", "scope": "operator", "iss": "https://id.example", "aud": "saga-shop"})
    assert checking.principal(f"Bearer {good}").has("operator")
    for claims in ({"iss": "https://id.example", "aud": "another-api"},
                   {"iss": "https://evil", "aud": "saga-shop"}, {"aud": "saga-shop"}, {"iss": "https://id.example"}):
        with pytest.raises(AuthenticationError):
            checking.principal("Bearer " + signed({"sub": "ops", "scope": "operator", **claims}))


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_public_key_verifies_tokens_of_its_own_algorithm_only(algorithm: str) -> None:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1()))
    public = pem(private)
    verifying = Authenticator.from_settings(settings(auth_jwt_public_key=public))
    assert verifying.mode is AuthMode.REQUIRED
    good = signed({"sub": "ops", "scope": "operator"}, key=private, algorithm=algorithm)
    assert verifying.principal(f"Bearer {good}").has("operator")
    # The classic confusion: the public key's own text used as an HMAC secret.
    forged = hand_signed_hs256({"sub": "ops", "scope": "operator", "exp": 9999999999}, public.encode())
    with pytest.raises(AuthenticationError):
        verifying.principal(f"Bearer {forged}")


def test_a_minted_token_is_accepted_until_it_expires() -> None:
    configured = settings(auth_jwt_secret=SECRET, auth_jwt_issuer="saga", auth_jwt_audience="shop")
    customer_id = uuid4()
    token = mint_token(configured, subject=str(customer_id), scopes=["customer"], ttl=timedelta(minutes=5))
    assert Authenticator.from_settings(configured).principal(f"Bearer {token}").customer_id == customer_id
    old = mint_token(configured, subject=str(customer_id), scopes=["customer"], ttl=timedelta(minutes=5),
                     now=now() - timedelta(hours=1))
    with pytest.raises(AuthenticationError, match="expired"):
        Authenticator.from_settings(configured).principal(f"Bearer {old}")


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.com", False),
])
def test_dev_mode_is_only_for_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    checking = authenticator()
    token = signed({**OPS, "exp": now() + timedelta(minutes=5)})
    assert checking.principal(f"Bearer {token}").has("operator")
    assert checking.principal(f"Bearer {token}").has("operator")  # now from memory
    with freeze_time(now() + timedelta(minutes=6)), pytest.raises(AuthenticationError, match="expired"):
        checking.principal(f"Bearer {token}")
