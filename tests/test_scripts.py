"""scripts.Runner: our scripts on connections kept aside from redis-py's pool, against the real Redis."""

from __future__ import annotations

import os
import uuid

import redis

from spawn_celery.scripts import Runner

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def _setup() -> tuple[redis.Redis, Runner, str]:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/1")
    return client, Runner(client), f"test:scripts:{uuid.uuid4().hex}"


def test_a_script_runs_once_per_call_on_one_kept_connection() -> None:
    client, runner, key = _setup()
    script = client.register_script(INCR)
    client.script_load(INCR)
    ids = set()
    for i in range(1, 6):
        assert runner.run(script, [key], [1]) == i
        ids.add(runner.call("CLIENT", "ID"))
    assert len(ids) == 1  # the same connection each time, not one per call
    assert int(client.get(key) or 0) == 5
    client.delete(key)


def test_a_script_redis_forgot_is_loaded_again_and_runs_once() -> None:
    client, runner, key = _setup()
    script = client.register_script(INCR)
    assert runner.run(script, [key], [2]) == 2
    client.script_flush()  # as after a Redis restart
    assert runner.run(script, [key], [3]) == 5
    assert int(client.get(key) or 0) == 5
    client.delete(key)


def test_a_killed_connection_is_replaced_and_the_call_still_answers() -> None:
    client, runner, key = _setup()
    script = client.register_script(INCR)
    assert runner.run(script, [key], [1]) == 1
    killed = runner.call("CLIENT", "ID")
    client.execute_command("CLIENT", "KILL", "ID", killed)
    assert runner.run(script, [key], [1]) == 2  # redis-py's own path answered it
    assert runner.run(script, [key], [1]) == 3  # and the kept connection reconnected
    assert runner.call("CLIENT", "ID") != killed
    client.delete(key)


def test_an_error_reply_is_raised_and_leaves_the_connection_usable() -> None:
    client, runner, key = _setup()
    client.set(key, "not a number")
    script = client.register_script(INCR)
    try:
        runner.run(script, [key], [1])
    except redis.ResponseError as exc:
        assert "not an integer" in str(exc)
    else:
        raise AssertionError("INCRBY on a string must fail")
    before = runner.call("CLIENT", "ID")
    client.set(key, 1)
    assert runner.run(script, [key], [1]) == 2
    assert runner.call("CLIENT", "ID") == before
    client.delete(key)


def test_a_forked_child_uses_connections_of_its_own() -> None:
    client, runner, key = _setup()
    parent_id = runner.call("CLIENT", "ID")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection id, never touch the parent's socket
        try:
            os.write(write, str(runner.call("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_id = int(os.read(read, 64) or 0)
    os.close(read)
    assert status == 0 and child_id and child_id != parent_id
    assert runner.call("CLIENT", "ID") == parent_id  # the parent's connection was not disturbed
    client.delete(key)
