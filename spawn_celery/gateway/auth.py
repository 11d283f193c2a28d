"""Authentication of /api requests: HTTP Basic and JWT bearer tokens (HS256 or RS256, via PyJWT).

Off unless configured (``SPAWN_AUTH_BASIC``, ``SPAWN_AUTH_JWT_SECRET``, ``SPAWN_AUTH_JWT_PUBLIC_KEY``). When on,
every /api request must carry valid credentials; the principal (Basic user name, or the token's ``sub``) is what
ACL ``principals`` match. Spawn documents both flows as "under development" and enforces neither.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from pathlib import Path
from typing import Any

from spawn_celery.config import Settings
from spawn_celery.errors import ConfigError, Unauthenticated


class Authenticator:
    """Checks the ``Authorization`` header of a request."""

    def __init__(self, settings: Settings) -> None:
        """Read the configured credentials.

        Raises:
            ConfigError: a malformed ``SPAWN_AUTH_BASIC`` entry or an unreadable public key.
        """
        self._users: dict[str, str] = {}
        for item in (i.strip() for i in settings.auth_basic.split(",")):
            if not item:
                continue
            user, sep, password = item.partition(":")
            if not sep or not user:
                raise ConfigError("SPAWN_AUTH_BASIC", item, "use user:password[,user:password]")
            self._users[user] = password
        self._keys: dict[str, Any] = {}
        if settings.auth_jwt_secret:
            self._keys["HS256"] = settings.auth_jwt_secret
        if settings.auth_jwt_public_key:
            self._keys["RS256"] = _public_key(settings.auth_jwt_public_key)
        if self._keys:
            import jwt  # the optional ``auth`` extra; fail at start, not on the first request

            self._jwt: Any = jwt

    @property
    def enabled(self) -> bool:
        """Whether any authentication is configured."""
        return bool(self._users or self._keys)

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` header value for a 401."""
        schemes = []
        if self._users:
            schemes.append('Basic realm="spawn-celery"')
        if self._keys:
            schemes.append('Bearer realm="spawn-celery"')
        return ", ".join(schemes)

    def authenticate(self, authorization: str | None) -> str:
        """Return the principal of a request's ``Authorization`` header ("" when auth is off).

        Raises:
            Unauthenticated: auth is on and the header is missing, malformed or wrong.
        """
        if not self.enabled:
            return ""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self._users:
            return self._basic(credentials.strip())
        if scheme == "bearer" and self._keys:
            return self._bearer(credentials.strip())
        accepted = " or ".join(s for s, on in (("Basic", self._users), ("Bearer", self._keys)) if on)
        raise Unauthenticated(f"authentication required: send {accepted} credentials")

    def _basic(self, credentials: str) -> str:
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Unauthenticated("malformed Basic credentials") from None
        expected = self._users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise Unauthenticated("wrong user name or password")
        return user

    def _bearer(self, token: str) -> str:
        jwt = self._jwt
        try:
            algorithm = jwt.get_unverified_header(token).get("alg", "")
            key = self._keys.get(algorithm)
            if key is None:
                raise Unauthenticated(f"JWT algorithm {algorithm!r} is not accepted; use {' or '.join(self._keys)}")
            claims = jwt.decode(token, key, algorithms=[algorithm], options={"verify_aud": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid JWT: {exc}") from None
        return str(claims.get("sub", ""))


def _public_key(value: str) -> str:
    """A PEM public key given inline or as a file path."""
    if value.lstrip().startswith("-----BEGIN"):
        return value
    try:
        return Path(value).read_text()
    except OSError as exc:
        raise ConfigError("SPAWN_AUTH_JWT_PUBLIC_KEY", value, f"not a PEM key and not a readable file: {exc}") from None
