"""``spawn-celery gateway``: the gateway on Werkzeug's threaded development server.

For production use gunicorn with ``web/gunicorn.conf.py``. SIGTERM drains here too: readiness turns 503, new
invocations get 503, in-flight requests are answered, then the server stops.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from typing import Any

from werkzeug.serving import make_server

from spawn_celery.config import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``spawn-celery gateway``."""
    parser.add_argument("--host", default="", help="bind address (default: PROXY_HTTP_HOST, else 0.0.0.0)")
    parser.add_argument("--port", type=int, default=0, help="port (default: PROXY_HTTP_PORT, else 9001)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGTERM (drained) or Ctrl-C."""
    from spawn_celery.gateway.app import create_app

    settings = settings.replace(http_host=args.host or settings.http_host, http_port=args.port or settings.http_port)
    app = create_app(settings)
    server = make_server(settings.http_host, settings.http_port, app, threaded=True)
    gateway = app.extensions["spawn_celery"]

    def on_sigterm(signum: int, frame: Any) -> None:
        gateway.drain.begin(server.shutdown)

    signal.signal(signal.SIGTERM, on_sigterm)
    log.info("gateway listening on http://%s:%d", settings.http_host, server.server_port)
    server.serve_forever()
    # serve_forever has stopped accepting; requests accepted just before (refused with 503 while draining) are
    # still being written by their threads: let them finish so no client sees a cut-off response
    time.sleep(0.05)
    gateway.drain.wait_idle(5.0)
    server.server_close()
    log.info("gateway stopped")
    return 0
