"""Spawn's HTTP/protobuf routes (spawn-protocol.md 1.2-1.6): register, spawn, invoke and read state.

Bodies are protobuf (``application/octet-stream`` or ``application/protobuf``). Every answer, error or not, is the
endpoint's response message with a ``RequestStatus``, because spawn-python-sdk parses every reply that way.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request

from spawn_celery import __version__, codec
from spawn_celery.actor import RESERVED_GET_ACTIONS, Kind
from spawn_celery.client import Client
from spawn_celery.errors import DefinitionError, RequestError, SpawnError
from spawn_celery.gateway import answers, body
from spawn_celery.gateway.acl import Call
from spawn_celery.gateway.parts import Gateway, answering
from spawn_celery.gateway.rest import value_json
from spawn_celery.message import Message
from spawn_celery.proto import actor_pb2, protocol_pb2

log = logging.getLogger(__name__)
PROTOCOL_MAJOR, PROTOCOL_MINOR = 1, 2
PROXY_NAME = "spawn-celery"


def blueprint(gw: Gateway) -> Blueprint:
    """The protobuf routes of ``gw``."""
    bp = Blueprint("protocol", __name__)
    limit = gw.settings.max_body_bytes
    services = gw.services

    @bp.post("/api/v1/system")
    @answering(gw, protocol_pb2.RegistrationResponse)
    def register(principal: str) -> Response:
        req = body.protobuf(request, protocol_pb2.RegistrationRequest, limit)
        system = body.check_system(req.actor_system.name, "RegistrationRequest.actor_system.name")
        actors = []
        for key, actor in req.actor_system.registry.actors.items():
            actor.id.name = body.check_actor(actor.id.name or key, "Actor.id.name")
            actor.id.system = system
            actors.append(actor)
        if not actors:
            raise RequestError(f"RegistrationRequest for actor system {system!r} registers no actors")
        gw.drain.check()
        try:
            services.registry.register(system, actors, host=host_url(gw))
        except DefinitionError as exc:  # the host declared something impossible: its mistake, not ours
            raise RequestError(f"RegistrationRequest for actor system {system!r}: {exc}") from None
        _warm_up(gw, system, actors)
        return answers.protobuf(
            protocol_pb2.RegistrationResponse(
                status=answers.status_message("OK", "Accepted"),
                proxy_info=protocol_pb2.ProxyInfo(
                    protocol_major_version=PROTOCOL_MAJOR,
                    protocol_minor_version=PROTOCOL_MINOR,
                    proxy_name=PROXY_NAME,
                    proxy_version=__version__,
                ),
            )
        )

    @bp.post("/api/v1/system/<system>/actors/spawn")
    @answering(gw, protocol_pb2.SpawnResponse)
    def spawn(principal: str, system: str) -> Response:
        revision = body.revision(request.args.get("revision"))
        req = body.protobuf(request, protocol_pb2.SpawnRequest, limit)
        if not req.actors:
            raise RequestError("SpawnRequest.actors is empty")
        targets = []
        for actor_id in req.actors:
            target = body.check_system(actor_id.system or system, "SpawnRequest ActorId.system")
            name = body.check_actor(actor_id.name, "SpawnRequest ActorId.name")
            parent = body.check_actor(actor_id.parent, f"SpawnRequest ActorId.parent of {name!r}")
            targets.append((target, name, parent))
        gw.drain.check()
        for target, name, parent in targets:
            Client(services=services).spawn(target, name, parent, revision=revision)  # restores an active one
        return answers.protobuf(protocol_pb2.SpawnResponse(status=answers.status_message("OK", "Accepted")))

    @bp.post("/api/v1/system/<system>/actors/<actor>/invoke")
    @answering(gw, protocol_pb2.InvocationResponse)
    def invoke(principal: str, system: str, actor: str) -> Response:
        req = body.protobuf(request, protocol_pb2.InvocationRequest, limit)
        gw.invoker.normalise(req, system, actor)
        outcome = gw.invoker.invoke(req, principal=principal)
        outcome.reply.raise_for_error()
        answer = protocol_pb2.InvocationResponse(
            status=answers.status_message("OK", ""),
            system=actor_pb2.ActorSystem(name=req.system.name),
            actor=actor_pb2.Actor(id=req.actor.id),
        )
        payload = outcome.reply.payload_any()
        if payload is not None:
            answer.value.CopyFrom(payload)
        elif outcome.waited:
            answer.noop.SetInParent()
        return answers.protobuf(answer, headers={"X-Spawn-Revision": str(outcome.reply.revision)})

    @bp.get("/api/v1/system/<system>/actors/<actor>")
    @answering(gw, protocol_pb2.InvocationResponse)
    def state(principal: str, system: str, actor: str) -> Response:
        body.check_system(system, "actor system in the path")
        body.check_actor(actor, "actor name in the path")
        gw.policy.check(Call(principal, "", "", system, actor, "get"))
        view = gw.client.state(system, actor)
        headers = {"X-Spawn-Revision": str(view.revision), "X-Spawn-Active": "true" if view.active else "false"}
        wants = request.accept_mimetypes.best_match([answers.PROTOBUF, answers.JSON], answers.PROTOBUF)
        if wants == answers.JSON:
            doc = {
                "status": "OK", "system": system, "actor": actor, "revision": view.revision, "active": view.active,
                "tags": view.tags, "type": view.type_url, "state": value_json(codec.pack(view.value)),
            }
            return answers.json_answer(doc, headers=headers)
        answer = protocol_pb2.InvocationResponse(
            status=answers.status_message("OK", ""),
            system=actor_pb2.ActorSystem(name=system),
            actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=actor, system=system)),
        )
        answer.actor.state.tags.update(view.tags)
        packed = codec.pack(view.value)
        if packed is not None:
            answer.actor.state.state.CopyFrom(packed)
            answer.value.CopyFrom(packed)
        else:
            answer.noop.SetInParent()
        return answers.protobuf(answer, headers=headers)

    return bp


def host_url(gw: Gateway) -> str:
    """The URL workers call a registering host back at: ``USER_FUNCTION_HOST`` or the client's address."""
    host = gw.settings.user_function_host or request.remote_addr or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{gw.settings.user_function_port}"


def _warm_up(gw: Gateway, system: str, actors: list[actor_pb2.Actor]) -> None:
    """Activate stateful named actors at registration, as Spawn's warm-up does (spawn-protocol.md 1.4).

    Activation loads the state and starts the actor's timer actions. It is an async invocation of the default
    ``get`` action (answered by the worker from the state, without calling the host); an actor that defines every
    ``get`` spelling itself is activated by its first invocation instead.
    """
    now = int(time.time() * 1000)
    for actor in actors:
        if Kind.from_wire(actor.settings.kind) is not Kind.NAMED or not actor.settings.stateful:
            continue
        defined = {a.name for a in actor.actions} | {t.action.name for t in actor.timer_actions}
        action = next((a for a in sorted(RESERVED_GET_ACTIONS) if a not in defined), None)
        if action is None:
            continue
        request = protocol_pb2.InvocationRequest(
            system=actor_pb2.ActorSystem(name=system),
            actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=actor.id.name, system=system)),
            action_name=action,
            noop=protocol_pb2.Noop(),
        )
        setattr(request, "async", True)
        try:
            gw.services.router.submit(Message(f"warmup.{system}.{actor.id.name}.{now}", request))
        except SpawnError as exc:  # registration stands; the actor activates on its first invocation instead
            log.warning("warm-up of %s/%s not sent: %s", system, actor.id.name, exc)
