"""Authentication (Basic, JWT HS256/RS256) and the ACL policy file, on a real gateway process; off by default."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spawn_celery.config import Settings
from spawn_celery.proto import protocol_pb2
from tests.gateway.conftest import Proc, dev_gateway
from tests.gateway.helpers import PB, invoke, spawn
from tests.support import WorkerProcess

SECRET = "hs256-test-secret-that-is-long-enough-for-pyjwt"
POLICY = """
default: deny
policies:
  - name: people-on-tests
    type: allow
    principals: [alice, bob]
    systems: [tests]
  - name: nobody-fails
    type: deny
    actions: [fail]
"""
PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def basic(user: str, password: str) -> dict[str, str]:
    return {**PB, "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {**PB, "Authorization": "Bearer " + token}


@pytest.fixture(scope="module")
def secured(gw_settings: Settings, gw_dir: Path, worker: WorkerProcess) -> Iterator[Proc]:
    (gw_dir / "acl.yaml").write_text(POLICY)
    public = PRIVATE.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    (gw_dir / "jwt.pem").write_bytes(public)
    settings = gw_settings.replace(auth_basic="alice:wonderland,eve:apple", auth_jwt_secret=SECRET,
                                   auth_jwt_public_key=str(gw_dir / "jwt.pem"), acl_file=str(gw_dir / "acl.yaml"))
    gw = dev_gateway(settings).start()
    yield gw
    gw.stop(signal.SIGINT)


def counter(gw: Proc, http: requests.Session) -> str:
    status, _, name = spawn(http, gw.url, "tests", "counter", headers=basic("alice", "wonderland"))
    assert status == 200
    return name


def test_no_or_wrong_credentials_are_401_with_a_challenge(secured: Proc, http: requests.Session) -> None:
    forged = jwt.encode({"sub": "bob"}, "wrong-secret-wrong-secret-wrong-secret")
    for headers in (PB, basic("alice", "nope"), bearer("not.a.jwt"), bearer(forged)):
        status, answer = invoke(http, secured.url, "tests", "x", "increment", headers=headers)
        assert status == 401 and answer.status.status == protocol_pb2.ERROR and answer.status.message
    reply = http.post(f"{secured.url}/api/v1/system/tests/actors/x/invoke", headers=PB)
    assert "Basic" in reply.headers["WWW-Authenticate"] and "Bearer" in reply.headers["WWW-Authenticate"]
    assert http.get(secured.url + "/health/readiness").status_code == 200
    assert http.get(secured.url + "/api/v1/openapi.yaml").status_code == 401
    assert http.get(secured.url + "/api/v1/openapi.yaml", headers=basic("eve", "apple")).status_code == 200


def test_basic_and_jwt_callers_allowed_by_the_acl(secured: Proc, http: requests.Session) -> None:
    name = counter(secured, http)
    assert invoke(http, secured.url, "tests", name, "increment", headers=basic("alice", "wonderland"))[0] == 200
    hs = jwt.encode({"sub": "bob", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert invoke(http, secured.url, "tests", name, "increment", headers=bearer(hs))[0] == 200
    rs = jwt.encode({"sub": "bob"}, PRIVATE, algorithm="RS256")
    status, answer = invoke(http, secured.url, "tests", name, "increment", headers=bearer(rs))
    assert status == 200 and answer.status.status == protocol_pb2.OK


def test_expired_token_is_401(secured: Proc, http: requests.Session) -> None:
    old = jwt.encode({"sub": "bob", "exp": int(time.time()) - 10}, SECRET, algorithm="HS256")
    status, answer = invoke(http, secured.url, "tests", "x", "increment", headers=bearer(old))
    assert status == 401 and "expired" in answer.status.message.lower()


def test_acl_denies_with_403_and_the_actor_is_not_invoked(secured: Proc, http: requests.Session) -> None:
    name = counter(secured, http)
    invoke(http, secured.url, "tests", name, "increment", headers=basic("alice", "wonderland"))
    status, answer = invoke(http, secured.url, "tests", name, "fail", headers=basic("alice", "wonderland"))
    assert status == 403 and "nobody-fails" in answer.status.message
    status, answer = invoke(http, secured.url, "tests", name, "increment", headers=basic("eve", "apple"))
    assert status == 403 and "no ACL policy allows" in answer.status.message
    reply = http.get(f"{secured.url}/api/v1/system/tests/actors/{name}", headers={**basic("alice", "wonderland"),
                                                                                  "Accept": "application/json"})
    assert reply.json()["revision"] == 1  # neither denied call ran
    json_reply = http.post(f"{secured.url}/api/v1/system/tests/actors/{name}/actions/increment",
                           headers={"Authorization": basic("eve", "apple")["Authorization"]})
    assert json_reply.status_code == 403 and json_reply.json()["error"] == "Forbidden"
