"""A remote SDK host for the gateway tests, written to behave like spawn-python-sdk (spawn-protocol.md 12.5).

It is built on OUR generated Gen-1 protobuf (the unmodified spawn-python-sdk is not installable here). Like the
SDK it registers its actor system with the proxy on start (``POST /api/v1/system``), serves
``POST /api/v1/actors/actions``, picks the entity by ``actor.parent`` for spawned instances and by name otherwise,
answers an ``ActorInvocationResponse`` and lets an action's exception become Flask's HTML 500 page.

Run: ``python -m tests.gateway.sdkhost --port P --proxy http://127.0.0.1:G``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask, Response, request

from spawn_celery import codec
from spawn_celery.examples.domain_pb2 import CounterState, CounterValue, Increment
from spawn_celery.proto import actor_pb2, protocol_pb2

SYSTEM = "sdk"
Handler = Callable[[Any, Any], "Result"]


class Result:
    """What an action returns (a tiny ``Value``)."""

    def __init__(self, reply: Any = None, state: Any = None, *, noreply: bool = False, checkpoint: bool = False):
        self.reply, self.state, self.noreply, self.checkpoint = reply, state, noreply, checkpoint
        self.broadcast: tuple[str, str, Any] | None = None
        self.forward: tuple[str, str] | None = None
        self.pipe: tuple[str, str] | None = None
        self.effects: list[tuple[str, str, Any]] = []


ACTORS: dict[str, dict[str, Any]] = {}
CALLS: dict[str, int] = {}
CALLS_LOCK = threading.Lock()


def actor(name: str, kind: int = 1, *, stateful: bool = True, channel: str = "", timers: dict[str, int] | None = None):
    ACTORS[name] = {"kind": kind, "stateful": stateful, "channel": channel, "timers": timers or {}, "actions": {}}

    def action(fn: Handler) -> Handler:
        ACTORS[name]["actions"][fn.__name__] = fn
        return fn

    return action


joe = actor("joe", timers={"hi": 300})
listener = actor("listener", channel="greetings")
calc = actor("calc")
echo_actor = actor("echo", stateful=False)
abs_actor = actor("abs", kind=2)
pool_actor = actor("pool", kind=3, stateful=False)


@joe
def setLanguage(payload: Any, state: Any) -> Result:  # noqa: N802 - the SDK README's action name
    languages = list(state or [])
    languages.append(payload["language"])
    return Result({"response": f"hello in {payload['language']}"}, languages)


@joe
def hi(payload: Any, state: Any) -> Result:
    result = Result(state=(state or []), noreply=True)
    result.broadcast = ("greetings", "hear", "hi from joe")
    return result


@listener
def hear(payload: Any, state: Any) -> Result:
    heard = CounterState(value=(state.value if state else 0) + 1)
    return Result(state=heard, noreply=True)


@calc
def add(payload: Any, state: Any) -> Result:
    total = (state.value if state else 0) + (payload.by if payload else 1)
    return Result(CounterValue(value=total), CounterState(value=total))


@echo_actor
def echo(payload: Any, state: Any) -> Result:
    return Result({"echoed": codec.to_json(payload)})


@abs_actor
def sum(payload: Any, state: Any) -> Result:  # noqa: A001 - the SDK README's action name
    total = (state.value if state else 0) + (payload.by if payload else 1)
    return Result(CounterValue(value=total), CounterState(value=total))


@abs_actor
def save(payload: Any, state: Any) -> Result:
    total = (state.value if state else 0) + 1
    return Result(CounterValue(value=total), CounterState(value=total), checkpoint=True)


@abs_actor
def quiet(payload: Any, state: Any) -> Result:
    return Result(state=CounterState(value=(state.value if state else 0) + 1), noreply=True)


@abs_actor
def boom(payload: Any, state: Any) -> Result:
    raise RuntimeError("boom in the sdk host")


@abs_actor
def nap(payload: Any, state: Any) -> Result:
    time.sleep(float((payload or {}).get("s", 1)))
    return Result({"slept": True})


@abs_actor
def forward(payload: Any, state: Any) -> Result:
    result = Result("ignored")
    result.forward = ("calc", "add")
    return result


@abs_actor
def pipe(payload: Any, state: Any) -> Result:
    result = Result(CounterValue(value=42))
    result.pipe = ("echo", "echo")
    return result


@abs_actor
def effect(payload: Any, state: Any) -> Result:
    result = Result(noreply=True)
    result.effects.append(("calc", "add", Increment(by=100)))
    return result


@pool_actor
def work(payload: Any, state: Any) -> Result:
    return Result({"worked": payload})


def registration() -> protocol_pb2.RegistrationRequest:
    req = protocol_pb2.RegistrationRequest(
        service_info=protocol_pb2.ServiceInfo(
            service_name="spawn-python-sdk", service_version="0.1.0", service_runtime="Python test",
            support_library_name="spawn-python-sdk", support_library_version="0.1.0",
            protocol_major_version=1, protocol_minor_version=1,
        ),
        actor_system=actor_pb2.ActorSystem(name=SYSTEM),
    )
    for name, spec in ACTORS.items():
        a = req.actor_system.registry.actors[name]
        a.id.name, a.id.system = name, SYSTEM
        a.state.SetInParent()
        a.metadata.channel_group = spec["channel"]
        a.settings.kind = spec["kind"]
        a.settings.stateful = spec["stateful"]
        a.settings.snapshot_strategy.timeout.timeout = 2000
        a.settings.deactivation_strategy.timeout.timeout = 30000
        a.actions.extend(actor_pb2.Action(name=n) for n in spec["actions"] if n not in spec["timers"])
        for n, every in spec["timers"].items():
            a.timer_actions.append(actor_pb2.FixedTimerAction(seconds=every, action=actor_pb2.Action(name=n)))
    return req


def create_app() -> Flask:
    app = Flask("sdkhost")

    @app.post("/api/v1/actors/actions")
    def actions() -> Response:
        inv = protocol_pb2.ActorInvocation.FromString(request.get_data())
        if inv.actor.system != SYSTEM:
            raise RuntimeError(f"wrong system {inv.actor.system}")
        spec = ACTORS[inv.actor.parent or inv.actor.name]  # a missing parent is a KeyError, as in the SDK
        handler = spec["actions"][inv.action_name]
        key = f"{inv.actor.name}.{inv.action_name}"
        with CALLS_LOCK:
            CALLS[key] = CALLS.get(key, 0) + 1
        state = codec.unpack(inv.current_context.state) if inv.current_context.HasField("state") else None
        payload = codec.unpack(inv.value) if inv.HasField("value") else None
        result = handler(payload, state)
        return Response(to_response(inv, result).SerializeToString(), mimetype="application/octet-stream")

    @app.get("/test/calls/<key>")
    def calls(key: str) -> dict[str, int]:
        """How often an action ran (test hook; not part of the SDK)."""
        return {"calls": CALLS.get(key, 0)}

    return app


def to_response(inv: protocol_pb2.ActorInvocation, result: Result) -> protocol_pb2.ActorInvocationResponse:
    resp = protocol_pb2.ActorInvocationResponse(actor_name=inv.actor.name, actor_system=SYSTEM)
    resp.updated_context.SetInParent()
    if result.state is not None:
        resp.updated_context.state.CopyFrom(codec.pack(result.state))
    if result.noreply or result.reply is None:
        resp.noop.SetInParent()
    else:
        resp.value.CopyFrom(codec.pack(result.reply))
    if result.broadcast:
        channel, action, value = result.broadcast
        resp.workflow.broadcast.channel_group, resp.workflow.broadcast.action_name = channel, action
        resp.workflow.broadcast.value.CopyFrom(codec.pack(value))
    if result.forward:
        resp.workflow.forward.actor, resp.workflow.forward.action_name = result.forward
    if result.pipe:
        resp.workflow.pipe.actor, resp.workflow.pipe.action_name = result.pipe
    for target, action, value in result.effects:
        req = protocol_pb2.InvocationRequest(
            system=actor_pb2.ActorSystem(name=SYSTEM),
            actor=actor_pb2.Actor(id=actor_pb2.ActorId(name=target, system=SYSTEM)),
            action_name=action,
        )
        setattr(req, "async", True)
        req.value.CopyFrom(codec.pack(value))
        resp.workflow.effects.append(protocol_pb2.SideEffect(request=req))
    resp.checkpoint = result.checkpoint
    return resp


def register_forever(proxy: str) -> None:
    """Register like the SDK (a retrying session), until the proxy accepts."""
    body = registration().SerializeToString()
    headers = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
    while True:
        try:
            reply = requests.post(f"{proxy}/api/v1/system", data=body, headers=headers, timeout=5)
            status = protocol_pb2.RegistrationResponse.FromString(reply.content).status.status
            if status == protocol_pb2.OK:
                print("registered", flush=True)
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--proxy", required=True)
    args = parser.parse_args()
    threading.Thread(target=register_forever, args=(args.proxy,), daemon=True).start()
    create_app().run("127.0.0.1", args.port, threaded=True)


if __name__ == "__main__":
    main()
