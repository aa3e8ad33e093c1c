#!/usr/bin/env bash
# make image: docker build when an engine answers, else podman through
# ../shared/tools/container-build.sh (machines without a Docker engine).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-compute:dev}
if docker info >/dev/null 2>&1; then
  docker build -t "$TAG" .
else
  # Docker format keeps the HEALTHCHECK (OCI images drop it).
  BUILDAH_FORMAT=docker \
    "${CONTAINER_TOOL:-../shared/tools/container-build.sh}" build "$TAG" Dockerfile .
fi
