"""Settings: the one place that reads the environment.

Each process builds one :class:`Settings` at start (``Settings.from_env()``) and passes it down. Spawn's own
variable names are used where Spawn has one (``PROXY_*``, ``USER_FUNCTION_*``, ``SPAWN_STATESTORE_KEY``);
``SPAWN_*`` names are ours. Every field documents its variable and default.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spawn_celery.errors import ConfigError

_DB_DEFAULT_PORTS = {"postgres": 5432, "mariadb": 3306, "mysql": 3306}


@dataclass(frozen=True)
class Settings:
    """Process configuration, filled from the environment at the edge and passed down explicitly."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """``SPAWN_REDIS_URL``: Redis for broker, results, locks, hot state and registry unless overridden."""
    broker_url: str = ""
    """``SPAWN_BROKER_URL``: Celery broker; defaults to ``redis_url``."""
    result_backend: str = ""
    """``SPAWN_RESULT_BACKEND``: Celery result backend, a Redis URL (replies are lists there); defaults to
    ``redis_url``."""
    redis_retries: int = 3
    """``SPAWN_REDIS_RETRIES``: times a Redis command of the runtime is sent again after a broken connection or a
    timeout (50 ms, 100 ms, 200 ms apart; 0: never, except that a script the runner sent on a connection of its own
    goes once through the client). Safe: the runtime's scripts are idempotent when sent again."""
    database_url: str = "sqlite:///spawn.db"
    """``SPAWN_DATABASE_URL`` (a SQLAlchemy URL), else built from ``PROXY_DATABASE_*``, else a SQLite file."""
    database_pool_size: int = 10
    """``PROXY_DATABASE_POOL_SIZE``: SQL connection pool size (server databases only)."""
    statestore_key: str = ""
    """``SPAWN_STATESTORE_KEY``: base64 of 32 bytes; encrypts state at rest (AES-256-GCM). Required."""
    statestore_old_keys: str = ""
    """``SPAWN_STATESTORE_OLD_KEYS``: ``id:base64,...`` keys that still decrypt after a rotation."""
    statestore_key_id: str = "V1"
    """``SPAWN_STATESTORE_KEY_ID``: id written with new ciphertexts (``V1`` gives Spawn's exact layout)."""
    actor_system: str = "spawn-system"
    """``PROXY_ACTOR_SYSTEM_NAME``: default actor system name."""
    http_host: str = "0.0.0.0"
    """``PROXY_HTTP_HOST``: gateway bind address."""
    http_port: int = 9001
    """``PROXY_HTTP_PORT``: gateway port."""
    user_function_host: str = ""
    """``USER_FUNCTION_HOST``: remote SDK host address; empty means the registering client's address."""
    user_function_port: int = 8090
    """``USER_FUNCTION_PORT``: remote SDK host port (Spawn's 8090; spawn-python-sdk listens on 8091)."""
    host_timeout_ms: int = 60_000
    """``SPAWN_HOST_TIMEOUT_MS``: timeout of one call to a remote SDK host."""
    invoke_timeout_ms: int = 60_000
    """``SPAWN_INVOKE_TIMEOUT_MS``: how long a sync caller waits (metadata ``request-timeout`` overrides)."""
    lock_lease_ms: int = 30_000
    """``SPAWN_LOCK_LEASE_MS``: lease of the per-actor activation lock; a holder past it is fenced off."""
    action_timeout_ms: int = 300_000
    """``SPAWN_ACTION_TIMEOUT_MS``: how long one action may keep its actor locked; the lock's lease is renewed
    while it runs, up to this (a hung action then loses the lock and is fenced off)."""
    lock_wait_ms: int = 60_000
    """``SPAWN_LOCK_WAIT_MS``: how long an invocation waits for a busy actor before failing (retryable)."""
    dedupe_ttl_s: int = 7_200
    """``SPAWN_DEDUPE_TTL_S``: how long applied invocation ids and their replies are remembered."""
    max_chain_depth: int = 16
    """``SPAWN_MAX_CHAIN_DEPTH``: bound on forward/pipe hops of one invocation."""
    visibility_timeout_s: int = 3600
    """``SPAWN_VISIBILITY_TIMEOUT_S``: Redis broker redelivery time of unacked tasks."""
    tick_ms: int = 50
    """``SPAWN_TICK_MS``: period of the housekeeping loop (timers, scheduled calls, snapshots, deactivation)."""
    snapshot_retry_ms: int = 1000
    """``SPAWN_SNAPSHOT_RETRY_MS``: back-off before retrying a failed snapshot write."""
    worker_concurrency: int = 0
    """``SPAWN_WORKER_CONCURRENCY``: prefork processes per worker (0 = number of CPUs)."""
    metrics_port: int = 0
    """``SPAWN_METRICS_PORT``: worker Prometheus port (0 disables)."""
    metrics_dir: str = ""
    """``PROMETHEUS_MULTIPROC_DIR``: directory for multiprocess Prometheus metrics."""
    batch_turns: int = 1
    """``SPAWN_BATCH_TURNS``: 1 queues calls to a busy actor in its mailbox, run by the lock holder in its turn
    (no worker process waits on a lock); 0 makes each call wait for the lock."""
    max_turn_ms: int = 1_000
    """``SPAWN_MAX_TURN_MS``: how long a lock holder keeps taking calls from its actor's mailbox after its own
    call; then it unlocks and the rest run in the next turn (fair to other actors of that process, bounded warm
    shutdown)."""
    sent_events: int = 1
    """``SPAWN_SENT_EVENTS``: 1 sends Celery task-sent events (Flower shows queued invocations); 0 saves a publish."""
    event_flush_ms: int = 100
    """``SPAWN_EVENT_FLUSH_MS``: a worker publishes its buffered task events at most this long after the first
    (or at once every 24 events), in one ``task-multi`` message; 0 publishes after every event-loop turn, as
    Celery does. Flower reads both."""
    task_events: int = 1
    """``SPAWN_TASK_EVENTS``: 1 starts workers with Celery task events on (``-E``: Flower sees every invocation
    from the start); 0 leaves them off until a monitor turns them on (Flower does, every 5 s)."""
    max_body_bytes: int = 8 * 1024 * 1024
    """``SPAWN_MAX_BODY_BYTES``: largest request body the gateway accepts (413 above)."""
    auth_basic: str = ""
    """``SPAWN_AUTH_BASIC``: ``user:password[,user:password]`` enables Basic auth on /api routes."""
    auth_jwt_secret: str = ""
    """``SPAWN_AUTH_JWT_SECRET``: HS256 secret enabling JWT bearer auth on /api routes."""
    auth_jwt_public_key: str = ""
    """``SPAWN_AUTH_JWT_PUBLIC_KEY``: PEM public key enabling RS256 JWT bearer auth."""
    acl_file: str = ""
    """``SPAWN_ACL_FILE``: ACL policy file (YAML) enforced on invocation targets; empty allows all."""
    drain_delay_ms: int = 1_000
    """``SPAWN_DRAIN_DELAY_MS``: after SIGTERM the gateway answers readiness 503 at least this long before exiting."""
    drain_timeout_ms: int = 30_000
    """``SPAWN_DRAIN_TIMEOUT_MS``: the longest the gateway waits for in-flight requests after SIGTERM."""
    gateway_imports: str = ""
    """``SPAWN_GATEWAY_IMPORTS``: comma-separated modules (``_pb2``) the gateway imports for JSON ``@type`` payloads."""
    amqp_url: str = ""
    """``SPAWN_AMQP_URL``: RabbitMQ URL of the RabbitMQ activator when its manifest has no ``settings.url``."""
    log_level: str = "INFO"
    """``SPAWN_LOG_LEVEL`` (or Spawn's ``SPAWN_PROXY_LOGGER_LEVEL``)."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Unparsed ``SPAWN_*`` variables, for components that document their own (read via ``get``)."""

    @property
    def broker(self) -> str:
        """The Celery broker URL in effect."""
        return self.broker_url or self.redis_url

    @property
    def backend(self) -> str:
        """The Celery result backend URL in effect."""
        return self.result_backend or self.redis_url

    def get(self, name: str, default: str = "") -> str:
        """Return an extra ``SPAWN_*`` variable captured at start, or ``default``."""
        return self.extra.get(name, default)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (tests and CLI flags)."""
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment variables that make a child process build these same settings."""
        env = {var: str(getattr(self, attr)) for attr, var in {**_STRS, **_INTS}.items() if getattr(self, attr) != ""}
        env["SPAWN_DATABASE_URL"] = self.database_url
        env["SPAWN_LOG_LEVEL"] = self.log_level
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ``).

        Raises:
            ConfigError: a variable has a malformed value; the message names it.
        """
        env = os.environ if environ is None else environ
        ints, strs = _INTS, _STRS
        values: dict[str, Any] = {}
        for attr, var in strs.items():
            if env.get(var):
                values[attr] = env[var]
        for attr, var in ints.items():
            raw = env.get(var, "").strip()
            if raw:
                try:
                    values[attr] = int(raw)
                except ValueError:
                    raise ConfigError(var, raw, "must be a whole number") from None
                if values[attr] < 0:
                    raise ConfigError(var, raw, "must not be negative")
        level = env.get("SPAWN_LOG_LEVEL") or env.get("SPAWN_PROXY_LOGGER_LEVEL")
        if level:
            values["log_level"] = level.upper()
        for var in ("SPAWN_REDIS_URL", "SPAWN_RESULT_BACKEND"):
            url = env.get(var, "")
            if url and not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigError(var, url, "must be a Redis URL (redis://, rediss:// or unix://)")
        values["database_url"] = _database_url(env)
        values["extra"] = {k: v for k, v in env.items() if k.startswith("SPAWN_")}
        return cls(**values)


_INTS = {
    "database_pool_size": "PROXY_DATABASE_POOL_SIZE",
    "http_port": "PROXY_HTTP_PORT",
    "user_function_port": "USER_FUNCTION_PORT",
    "host_timeout_ms": "SPAWN_HOST_TIMEOUT_MS",
    "invoke_timeout_ms": "SPAWN_INVOKE_TIMEOUT_MS",
    "lock_lease_ms": "SPAWN_LOCK_LEASE_MS",
    "redis_retries": "SPAWN_REDIS_RETRIES",
    "lock_wait_ms": "SPAWN_LOCK_WAIT_MS",
    "action_timeout_ms": "SPAWN_ACTION_TIMEOUT_MS",
    "dedupe_ttl_s": "SPAWN_DEDUPE_TTL_S",
    "max_chain_depth": "SPAWN_MAX_CHAIN_DEPTH",
    "visibility_timeout_s": "SPAWN_VISIBILITY_TIMEOUT_S",
    "tick_ms": "SPAWN_TICK_MS",
    "snapshot_retry_ms": "SPAWN_SNAPSHOT_RETRY_MS",
    "worker_concurrency": "SPAWN_WORKER_CONCURRENCY",
    "metrics_port": "SPAWN_METRICS_PORT",
    "max_body_bytes": "SPAWN_MAX_BODY_BYTES",
    "sent_events": "SPAWN_SENT_EVENTS",
    "task_events": "SPAWN_TASK_EVENTS",
    "event_flush_ms": "SPAWN_EVENT_FLUSH_MS",
    "batch_turns": "SPAWN_BATCH_TURNS",
    "max_turn_ms": "SPAWN_MAX_TURN_MS",
    "drain_delay_ms": "SPAWN_DRAIN_DELAY_MS",
    "drain_timeout_ms": "SPAWN_DRAIN_TIMEOUT_MS",
}
_STRS = {
    "redis_url": "SPAWN_REDIS_URL",
    "broker_url": "SPAWN_BROKER_URL",
    "result_backend": "SPAWN_RESULT_BACKEND",
    "statestore_key": "SPAWN_STATESTORE_KEY",
    "statestore_old_keys": "SPAWN_STATESTORE_OLD_KEYS",
    "statestore_key_id": "SPAWN_STATESTORE_KEY_ID",
    "actor_system": "PROXY_ACTOR_SYSTEM_NAME",
    "http_host": "PROXY_HTTP_HOST",
    "user_function_host": "USER_FUNCTION_HOST",
    "metrics_dir": "PROMETHEUS_MULTIPROC_DIR",
    "auth_basic": "SPAWN_AUTH_BASIC",
    "auth_jwt_secret": "SPAWN_AUTH_JWT_SECRET",
    "auth_jwt_public_key": "SPAWN_AUTH_JWT_PUBLIC_KEY",
    "acl_file": "SPAWN_ACL_FILE",
    "amqp_url": "SPAWN_AMQP_URL",
    "gateway_imports": "SPAWN_GATEWAY_IMPORTS",
}


def _database_url(env: Mapping[str, str]) -> str:
    """Pick the statestore URL: ``SPAWN_DATABASE_URL``, else Spawn's ``PROXY_DATABASE_*``, else SQLite."""
    if env.get("SPAWN_DATABASE_URL"):
        return env["SPAWN_DATABASE_URL"]
    kind = env.get("PROXY_DATABASE_TYPE", "").strip().lower()
    if not kind:
        return Settings.database_url
    if kind == "native" or kind == "sqlite":
        return "sqlite:///" + env.get("PROXY_DATABASE_NAME", "spawn.db")
    if kind not in _DB_DEFAULT_PORTS:
        raise ConfigError("PROXY_DATABASE_TYPE", kind, "must be one of postgres, mariadb, mysql, sqlite")
    driver = "postgresql+psycopg2" if kind == "postgres" else "mysql+pymysql"
    host = env.get("PROXY_DATABASE_HOST", "127.0.0.1")
    port = env.get("PROXY_DATABASE_PORT") or str(_DB_DEFAULT_PORTS[kind])
    name = env.get("PROXY_DATABASE_NAME", "eigr-functions-db")
    user = env.get("PROXY_DATABASE_USERNAME", "admin")
    secret = env.get("PROXY_DATABASE_SECRET", "admin")
    from urllib.parse import quote

    auth = quote(user, safe="") + (":" + quote(secret, safe="") if secret else "")
    url = f"{driver}://{auth}@{host}:{port}/{name}"
    if env.get("PROXY_DATABASE_SSL", "").lower() == "true":
        verify = env.get("PROXY_DATABASE_SSL_VERIFY", "").lower() == "true"
        if kind == "postgres":
            url += "?sslmode=" + ("verify-full" if verify else "require")
        else:
            url += "?ssl_verify_cert=" + ("true" if verify else "false") + "&ssl_check_hostname=" + str(verify).lower()
    return url
