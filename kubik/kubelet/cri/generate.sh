#!/bin/sh
# Rebuild the Python modules for api.proto (checked in, so nothing runs protoc at install).
# Run from anywhere; protoc is grpcio-tools' bundled one from the project's venv.
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
"${PYTHON:-.venv/bin/python}" -m grpc_tools.protoc -I . \
    --python_out=. --pyi_out=. --grpc_python_out=. \
    kubik/kubelet/cri/api.proto
