"""Who is calling: the authentication mode, bearer tokens (JWT or the opaque admin token) and the principal.

`dev` treats every caller as operator and admin, and is only for loopback;
`required` verifies a bearer token on every request that needs one; `off` is
`dev` on any address, for networks that authenticate in front. Unset, the mode
is `required` when a key is configured, else `dev`. A JWT is verified with the
one configured algorithm (so `alg: none` and algorithm confusion are refused),
must carry `exp`, and its `iss` and `aud` are checked when they are configured.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

CUSTOMER, OPERATOR, ADMIN = "customer", "operator", "admin"
SCOPES = (CUSTOMER, OPERATOR, ADMIN)
LOOPBACK_NAMES = ("localhost",)
VERIFIED_KEPT = 10_000


class AuthMode(Enum):
    DEV = "dev"
    REQUIRED = "required"
    OFF = "off"


class AuthenticationError(Exception):
    """The credential presented cannot be trusted; the message says why, without echoing it."""


class AuthConfigError(ValueError):
    """The authentication settings contradict each other; the message names the variable."""


@dataclass(frozen=True)
class Principal:
    """A caller: the token's subject and scopes. A customer's subject is its customer id."""

    subject: str | None
    scopes: frozenset[str]

    @property
    def customer_id(self) -> UUID | None:
        if CUSTOMER not in self.scopes or self.subject is None:
            return None
        return UUID(self.subject)

    @property
    def authenticated(self) -> bool:
        return self.subject is not None

    def has(self, scope: str) -> bool:
        return scope in self.scopes


ANONYMOUS = Principal(None, frozenset())
DEVELOPER = Principal("developer", frozenset({OPERATOR, ADMIN}))
ADMIN_TOKEN_HOLDER = Principal("admin-token", frozenset({OPERATOR, ADMIN}))


class AuthSettings(Protocol):
    """The settings identity is built from (`infra.settings.Settings` fits)."""

    @property
    def auth_mode(self) -> str | None: ...

    @property
    def auth_jwt_secret(self) -> str | None: ...

    @property
    def auth_jwt_public_key(self) -> str | None: ...

    @property
    def auth_jwt_algorithm(self) -> str | None: ...

    @property
    def auth_jwt_issuer(self) -> str | None: ...

    @property
    def auth_jwt_audience(self) -> str | None: ...

    @property
    def admin_token(self) -> str | None: ...


@dataclass(frozen=True)
class Authenticator:
    """Turns an `Authorization` header into a principal, or refuses it.

    A client sends the same token with every request until it expires, so a
    verified token is remembered (up to VERIFIED_KEPT of them) with its expiry
    and not verified again before then; a refused one is checked every time.
    """

    mode: AuthMode = AuthMode.DEV
    key: Any = None
    algorithm: str | None = None
    issuer: str | None = None
    audience: str | None = None
    admin_token: str | None = None
    _verified: dict[str, tuple[Principal, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Authenticator:
        mode = resolve_mode(settings)
        key, algorithm = verification_key(settings)
        return cls(mode=mode, key=key, algorithm=algorithm, issuer=settings.auth_jwt_issuer or None,
                   audience=settings.auth_jwt_audience or None, admin_token=settings.admin_token or None)

    @property
    def trusts_everyone(self) -> bool:
        return self.mode is not AuthMode.REQUIRED

    def principal(self, authorization: str | None) -> Principal:
        """The caller behind the header; anonymous without one. Raises AuthenticationError for a bad one."""
        if self.trusts_everyone:
            return DEVELOPER
        if authorization is None or not authorization.strip():
            return ANONYMOUS
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("the Authorization header is not 'Bearer <token>'")
        if self.admin_token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return ADMIN_TOKEN_HOLDER
        return self._remembered(token)

    def _remembered(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        principal, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()  # rarely reached; simpler and as safe as evicting one by one
        self._verified[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        if self.key is None or self.algorithm is None:
            raise AuthenticationError("this server accepts no signed tokens")
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[self.algorithm], issuer=self.issuer, audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("the token has expired") from None
        except jwt.InvalidTokenError as error:
            raise AuthenticationError(f"the token is not valid: {_reason(error)}") from None
        return principal_of(claims), float(claims["exp"])


def principal_of(claims: dict[str, Any]) -> Principal:
    """The principal a verified token's claims describe; a customer's `sub` must be its id (a UUID)."""
    subject, scope = claims.get("sub"), claims.get("scope", "")
    if not isinstance(subject, str) or not subject or not isinstance(scope, str):
        raise AuthenticationError("the token's sub and scope claims must be strings")
    scopes = frozenset(scope.split()) & frozenset(SCOPES)
    if CUSTOMER in scopes:
        try:
            UUID(subject)
        except ValueError:
            raise AuthenticationError("a customer token's sub must be the customer's id (a UUID)") from None
    return Principal(subject, scopes)


def _reason(error: jwt.InvalidTokenError) -> str:
    # PyJWT's messages name the failed check (signature, audience, algorithm), never the token itself.
    return str(error).rstrip(".") or type(error).__name__


def resolve_mode(settings: AuthSettings) -> AuthMode:
    """AUTH_MODE, or `required` when a key is configured and `dev` when none is."""
    secret, public_key = settings.auth_jwt_secret, settings.auth_jwt_public_key
    if secret and public_key:
        raise AuthConfigError("set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, not both")
    if settings.auth_mode:
        try:
            mode = AuthMode(settings.auth_mode.strip().lower())
        except ValueError:
            raise AuthConfigError(
                f"AUTH_MODE must be dev, required or off, not {settings.auth_mode!r}"
            ) from None
    else:
        mode = AuthMode.REQUIRED if secret or public_key else AuthMode.DEV
    if mode is AuthMode.REQUIRED and not (secret or public_key):
        raise AuthConfigError("AUTH_MODE=required needs AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY")
    return mode


def verification_key(settings: AuthSettings) -> tuple[Any, str | None]:
    """The key tokens are checked with and its one algorithm: HS256 for a secret, RS256/ES256 for a key."""
    if settings.auth_jwt_secret:
        algorithm = settings.auth_jwt_algorithm or "HS256"
        if algorithm not in ("HS256", "HS384", "HS512"):
            raise AuthConfigError(f"AUTH_JWT_ALGORITHM {algorithm} does not go with AUTH_JWT_SECRET")
        return settings.auth_jwt_secret, algorithm
    if not settings.auth_jwt_public_key:
        return None, None
    pem = settings.auth_jwt_public_key.strip()
    if not pem.startswith("-----BEGIN"):  # a path to the PEM file
        try:
            pem = Path(pem).read_text(encoding="ascii")
        except OSError as error:
            raise AuthConfigError(f"AUTH_JWT_PUBLIC_KEY is neither a PEM key nor a readable file: "
                                  f"{error.strerror}") from None
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        raise AuthConfigError("AUTH_JWT_PUBLIC_KEY is not a PEM public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        natural, allowed = "RS256", {"RS256", "RS384", "RS512", "PS256"}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        natural, allowed = "ES256", {"ES256", "ES384", "ES512"}
    else:
        raise AuthConfigError("AUTH_JWT_PUBLIC_KEY must be an RSA key (RS256) or an EC key (ES256)")
    algorithm = settings.auth_jwt_algorithm or natural
    if algorithm not in allowed:
        raise AuthConfigError(f"AUTH_JWT_ALGORITHM {algorithm} does not go with this AUTH_JWT_PUBLIC_KEY")
    return key, algorithm


def is_loopback(host: str) -> bool:
    """Whether `host` is an address only this machine can reach."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mint_token(
    settings: AuthSettings, *, subject: str, scopes: Iterable[str], ttl: timedelta,
    now: datetime | None = None,
) -> str:
    """A token signed with AUTH_JWT_SECRET that this server accepts, for local use and tests."""
    if not settings.auth_jwt_secret:
        raise AuthConfigError("minting a token needs AUTH_JWT_SECRET (a public key can only verify)")
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {"sub": subject, "scope": " ".join(scopes), "iat": issued, "exp": issued + ttl}
    if settings.auth_jwt_issuer:
        claims["iss"] = settings.auth_jwt_issuer
    if settings.auth_jwt_audience:
        claims["aud"] = settings.auth_jwt_audience
    _, algorithm = verification_key(settings)
    return jwt.encode(claims, settings.auth_jwt_secret, algorithm=algorithm or "HS256")
