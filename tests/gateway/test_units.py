"""Pure logic of the gateway, in-process: the error mapping, the ACL policy and the authenticator."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
import redis

from spawn_celery import errors
from spawn_celery.config import Settings
from spawn_celery.gateway.acl import Call, Policy
from spawn_celery.gateway.answers import classify
from spawn_celery.gateway.auth import Authenticator


def test_unexpected_error_is_500_with_an_id_that_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        status, name, message, kind = classify(ZeroDivisionError("secret detail"))
    error_id = message.rsplit(" ", 1)[1].rstrip(")")
    assert (status, name, kind) == (500, "ERROR", "InternalError") and "secret" not in message
    assert error_id in caplog.text and "ZeroDivisionError" in caplog.text


def test_known_errors_keep_their_status() -> None:
    assert classify(errors.ActorNotFound("s", "a"))[:2] == (404, "ACTOR_NOT_FOUND")
    assert classify(errors.InvocationTimeout("i", 1.0))[0] == 504
    assert classify(redis.ConnectionError("down"))[0] == 503
    assert len(classify(errors.RequestError("x" * 10_000))[2]) <= 2000


def test_acl_deny_wins_and_default_denies(tmp_path: Path) -> None:
    path = tmp_path / "acl.yaml"
    path.write_text("policies:\n  - {type: allow, systems: [shop]}\n  - {type: deny, actors: ['admin-*']}\n")
    policy = Policy.load(str(path))
    policy.check(Call("", "", "", "shop", "cart-1", "add"))
    with pytest.raises(errors.Forbidden, match="denies"):
        policy.check(Call("", "", "", "shop", "admin-1", "add"))
    with pytest.raises(errors.Forbidden, match="no ACL policy"):
        policy.check(Call("", "", "", "other", "cart-1", "add"))
    Policy.load("").check(Call("", "", "", "any", "thing", "at-all"))


def test_acl_file_mistakes_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "acl.yaml"
    path.write_text("policies:\n  - {type: maybe}\n")
    with pytest.raises(errors.ConfigError, match="allow or deny"):
        Policy.load(str(path))
    path.write_text("policies:\n  - {type: allow, actorz: [x]}\n")
    with pytest.raises(errors.ConfigError, match="unknown keys"):
        Policy.load(str(path))


def test_basic_auth_checks_users() -> None:
    auth = Authenticator(Settings(auth_basic="alice:pw"))
    token = base64.b64encode(b"alice:pw").decode()
    assert auth.authenticate(f"Basic {token}") == "alice"
    with pytest.raises(errors.Unauthenticated):
        auth.authenticate("Basic " + base64.b64encode(b"alice:no").decode())
    assert Authenticator(Settings()).authenticate(None) == ""
    with pytest.raises(errors.ConfigError):
        Authenticator(Settings(auth_basic="no-colon"))
