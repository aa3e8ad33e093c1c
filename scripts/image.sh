#!/usr/bin/env bash
# make image: builds the Dockerfile as it is, with docker build when a Docker
# engine answers, else podman build (see scripts/container.sh for the
# optional fallback on a machine that reaches no container registry).
#
#   image.sh [TAG]   default compute:dev
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container.sh
source scripts/container.sh
image_build "${1:-compute:dev}"
