"""gunicorn settings for the gateway. Thin: the logic lives in spawn_celery.gateway (drain, metrics).

Threaded workers (sync invocations wait on the result backend); several processes share the port. Metrics are
aggregated across workers when PROMETHEUS_MULTIPROC_DIR is set. SIGTERM drains (see spawn_celery.gateway.drain).
"""

from spawn_celery.config import Settings

_settings = Settings.from_env()

bind = f"{_settings.http_host}:{_settings.http_port}"
worker_class = "gthread"
workers = int(_settings.get("SPAWN_GATEWAY_WORKERS", "2"))
threads = int(_settings.get("SPAWN_GATEWAY_THREADS", "16"))
keepalive = 75
timeout = max(_settings.invoke_timeout_ms // 1000 + 30, 60)
graceful_timeout = (_settings.drain_delay_ms + _settings.drain_timeout_ms) // 1000 + 5
accesslog = None
control_socket_disable = True  # several gateways may share a machine (and $HOME)
loglevel = _settings.log_level.lower()


def on_starting(server):
    from spawn_celery.gateway.metrics import reset_multiprocess_dir

    reset_multiprocess_dir(_settings)


def post_worker_init(worker):
    from spawn_celery.gateway.drain import install_gunicorn

    install_gunicorn(worker)


def child_exit(server, worker):
    from spawn_celery.gateway.metrics import mark_process_dead

    mark_process_dead(_settings, worker.pid)
