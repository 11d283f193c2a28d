"""Remote host: a Spawn SDK process called back at ``POST /api/v1/actors/actions`` over pooled HTTP."""

from __future__ import annotations

import threading

import requests

from spawn_celery import codec
from spawn_celery.errors import ActorError, PayloadDecodeError, TransportUnavailable
from spawn_celery.proto import protocol_pb2

ACTIONS_PATH = "/api/v1/actors/actions"
_HEADERS = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}


class RemoteHost:
    """Calls one remote SDK host. Connections are pooled per process; no automatic retries (no double runs)."""

    _local = threading.local()

    def __init__(self, base_url: str, *, timeout_s: float) -> None:
        """Call ``base_url`` (``http://host:port``) with a per-call timeout."""
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    @classmethod
    def _session(cls) -> requests.Session:
        session: requests.Session | None = getattr(cls._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            cls._local.session = session
        return session

    def call(self, invocation: protocol_pb2.ActorInvocation) -> protocol_pb2.ActorInvocationResponse:
        """POST the invocation and decode the host's answer.

        Raises:
            TransportUnavailable: the host cannot be reached (nothing ran; safe to retry).
            ActorError: the host answered but not with a valid ``ActorInvocationResponse`` (it may have run).
        """
        url = self.base_url + ACTIONS_PATH
        try:
            reply = self._session().post(
                url, data=invocation.SerializeToString(), headers=_HEADERS, timeout=self.timeout_s
            )
        except requests.ConnectionError as exc:
            if _never_sent(exc):
                raise TransportUnavailable(f"remote host {self.base_url} unreachable: {exc}") from None
            # the connection broke after the request went out: the action may have run, so no retry
            raise ActorError(f"remote host {self.base_url} dropped the connection: {exc}") from None
        except requests.Timeout:
            raise ActorError(f"remote host {self.base_url} did not answer within {self.timeout_s:g} s") from None
        if reply.status_code >= 400:
            raise ActorError(f"remote host {self.base_url} answered HTTP {reply.status_code}: {reply.text[:200]}")
        try:
            response = codec.decode(protocol_pb2.ActorInvocationResponse, reply.content, "ActorInvocationResponse")
        except PayloadDecodeError as exc:
            raise ActorError(f"remote host {self.base_url} answered an invalid body: {exc}") from None
        if not response.HasField("updated_context"):
            raise ActorError(f"remote host {self.base_url} answered without updated_context")
        return response


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether the request certainly never reached the host (connect refused or timed out)."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)
