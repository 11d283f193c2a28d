"""The host contract: run one ``ActorInvocation`` and return its ``ActorInvocationResponse``."""

from __future__ import annotations

from typing import Protocol

from spawn_celery.proto import protocol_pb2


class Host(Protocol):
    """Something that runs actions. Implementations: PythonHost (in-process), RemoteHost (HTTP)."""

    def call(self, invocation: protocol_pb2.ActorInvocation) -> protocol_pb2.ActorInvocationResponse:
        """Run the action named in ``invocation``.

        Raises:
            ActorError: the action raised or the host answered with an error.
            TransportUnavailable: a remote host could not be reached.
        """
        ...
