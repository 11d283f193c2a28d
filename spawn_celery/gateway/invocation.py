"""The gateway's invocation path: check, route, wait, measure. Free of Flask so that every route shares it.

It talks to the router and the transport directly (one ``submit``, one ``wait``): the registry lookup is cached
in-process, so a warm invoke costs one broker publish and one result wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from spawn_celery.actor import RESERVED_GET_ACTIONS
from spawn_celery.errors import ActionNotFound, RequestError, SpawnError
from spawn_celery.gateway.acl import Call, Policy
from spawn_celery.gateway.body import check_actor, check_system
from spawn_celery.gateway.drain import Drain
from spawn_celery.gateway.metrics import GatewayMetrics
from spawn_celery.message import Message, Reply, new_id
from spawn_celery.proto import protocol_pb2
from spawn_celery.registry import Entry
from spawn_celery.routing import Router
from spawn_celery.transport import CeleryTransport

UNKNOWN = "<unknown>"
"""Metric label for targets that did not resolve (keeps label cardinality bounded)."""


@dataclass(frozen=True)
class Outcome:
    """A routed invocation: its reply (empty for async and scheduled calls) and its resolved target."""

    reply: Reply
    entry: Entry
    waited: bool


class Invoker:
    """Checks, routes and waits for invocations on behalf of the HTTP routes."""

    def __init__(
        self,
        *,
        router: Router,
        transport: CeleryTransport,
        metrics: GatewayMetrics,
        policy: Policy,
        drain: Drain,
        timeout_ms: int,
    ) -> None:
        """Compose the parts; ``timeout_ms`` is the default wait of sync calls."""
        self.router = router
        self.transport = transport
        self.metrics = metrics
        self.policy = policy
        self.drain = drain
        self.timeout_ms = timeout_ms

    def normalise(self, request: protocol_pb2.InvocationRequest, system: str = "", actor: str = "") -> None:
        """Fill the target from the path where the body leaves it empty (the body wins) and check it.

        Raises:
            RequestError: the system, actor or action is missing or malformed, or the body disagrees with itself.
        """
        body_system = request.system.name or request.actor.id.system
        if request.system.name and request.actor.id.system and request.system.name != request.actor.id.system:
            raise RequestError(
                f"InvocationRequest.system.name {request.system.name[:80]!r} and actor.id.system "
                f"{request.actor.id.system[:80]!r} differ"
            )
        target_system = check_system(body_system or system, "InvocationRequest.system.name")
        target_actor = check_actor(request.actor.id.name or actor, "InvocationRequest.actor.id.name")
        check_actor(request.action_name, "InvocationRequest.action_name")
        if request.register_ref:
            check_actor(request.register_ref, "InvocationRequest.register_ref")
        request.system.name = request.actor.id.system = target_system
        request.actor.id.name = target_actor

    def invoke(self, request: protocol_pb2.InvocationRequest, *, principal: str) -> Outcome:
        """Route ``request`` (normalised) and, unless async or scheduled, wait for its reply.

        Raises:
            SpawnError: refused before routing (draining, ACL, unknown actor/action) or no reply in time. An error
                reply of the actor is returned in ``Outcome.reply``, not raised.
        """
        started = time.perf_counter()
        system, actor, action = UNKNOWN, UNKNOWN, UNKNOWN
        status = "ERROR"
        try:
            self.drain.check()
            caller = request.caller
            self.policy.check(
                Call(principal, caller.system, caller.name, request.system.name, request.actor.id.name,
                     request.action_name)
            )
            if request.register_ref:
                self._check_template(request)
            message = Message(new_id(), request)
            sync = not getattr(request, "async") and not request.scheduled_to
            if sync:
                message.reply_to = message.id
            entry = self.router.submit(message)
            system, actor, action = entry.system, entry.type_name, request.action_name
            if not sync:
                status = "OK"
                return Outcome(Reply(), entry, False)
            reply = self.transport.wait(message.reply_to, _timeout_s(request, self.timeout_ms))
            status = reply.status
            return Outcome(reply, entry, True)
        except SpawnError as exc:
            status = exc.status_name
            raise
        finally:
            self.metrics.observe(system, actor, action, status, time.perf_counter() - started)


    def _check_template(self, request: protocol_pb2.InvocationRequest) -> None:
        """Refuse a lazy spawn (``register_ref``) for an action the template lacks, before the instance exists.

        The router spawns first and checks the action after, so a refused call would still leave an instance.
        """
        template = self.router.registry.lookup(request.system.name, request.register_ref)
        action = request.action_name
        if action not in template.actions and action not in RESERVED_GET_ACTIONS:
            raise ActionNotFound(request.system.name, request.actor.id.name, action)


def _timeout_s(request: protocol_pb2.InvocationRequest, default_ms: int) -> float:
    """The sync wait: metadata ``request-timeout`` (ms, as Spawn) or the default."""
    raw = request.metadata.get("request-timeout", "")
    ms = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else default_ms
    return max(ms, 1) / 1000.0
