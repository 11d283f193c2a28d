"""The in-memory cluster served over HTTP on 127.0.0.1, so that the real ``kubernetes`` client can talk to it.

Only the routes the operator uses: ConfigMaps, Deployments, HPAs and our custom resources (with ``/status``).
Errors become Kubernetes ``Status`` bodies with the same HTTP code, as the API server sends them.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes.client.exceptions import ApiException

from spawn_celery.k8s.fake import FakeCluster

_ROUTES = [
    (re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?$"), "ConfigMap"),
    (re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments(?:/([^/]+))?$"), "Deployment"),
    (
        re.compile(r"^/apis/autoscaling/v2/namespaces/([^/]+)/horizontalpodautoscalers(?:/([^/]+))?$"),
        "HorizontalPodAutoscaler",
    ),
    (re.compile(r"^/apis/spawn-eigr\.io/v1/namespaces/([^/]+)/actorsystems(?:/([^/]+))?(/status)?$"), "ActorSystem"),
    (re.compile(r"^/apis/spawn-eigr\.io/v1/namespaces/([^/]+)/actorhosts(?:/([^/]+))?(/status)?$"), "ActorHost"),
    (re.compile(r"^/apis/spawn-eigr\.io/v1/namespaces/([^/]+)/activators(?:/([^/]+))?(/status)?$"), "Activator"),
]


def _handler(cluster: FakeCluster, requests: list[tuple[str, str, str]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            path = self.path.split("?")[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            content_type = self.headers.get("Content-Type") or ""
            requests.append((self.command, path, content_type))
            try:
                code, answer = 200, self._dispatch(path, body, content_type)
                if self.command == "POST":
                    code = 201
            except ApiException as exc:
                code = int(exc.status or 500)
                answer = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": code,
                    "message": str(exc.reason),
                }
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, path: str, body: Any, content_type: str) -> Any:
            for pattern, kind in _ROUTES:
                match = pattern.match(path)
                if not match:
                    continue
                namespace, name = match.group(1), match.group(2)
                status = bool(match.groups()[2:] and match.group(3))
                if self.command == "GET":
                    return cluster.get(kind, namespace, name)
                if self.command == "POST":
                    return cluster.create(kind, namespace, body)
                if self.command == "PATCH":
                    return cluster.patch(kind, namespace, name, body, content_type.split(";")[0], status=status)
                if self.command == "DELETE":
                    cluster.delete(kind, namespace, name)
                    return {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            raise ApiException(status=404, reason=f"no route {self.command} {path}")

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler


@contextmanager
def serve(cluster: FakeCluster) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """Serve ``cluster`` on a free loopback port; yield (base URL, the requests seen)."""
    requests: list[tuple[str, str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster, requests))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
