#!/usr/bin/env bash
# Regenerate the committed protobuf Python code from protos/ (pinned grpcio-tools, see setup.cfg [dev]).
# CI runs this and fails when `git diff --exit-code` shows the committed code drifted.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
"$PY" -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. \
  protos/spawn_celery/proto/actor.proto \
  protos/spawn_celery/proto/protocol.proto \
  protos/spawn_celery/proto/state.proto \
  protos/spawn_celery/examples/domain.proto
