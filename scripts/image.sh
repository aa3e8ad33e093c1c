#!/usr/bin/env bash
# make image: builds the Dockerfile as it is, with docker build when a Docker
# engine answers, else podman build (see scripts/container.sh for the
# optional fallback on a machine that reaches no container registry).
#
#   image.sh [TAG]   default compute:dev
#
# The image's compute_build_info{revision} is this checkout's `git rev-parse
# --short HEAD`, as in a local build, passed as the Dockerfile's
# COMPUTE_REVISION build argument: the build context has no .git
# (.dockerignore), so the build inside cannot ask git. Outside a checkout
# none is passed, and the image says "unknown".
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container.sh
source scripts/container.sh
build_args=()
if revision=$(git rev-parse --short HEAD 2>/dev/null) && [[ -n $revision ]]; then
  build_args+=(--build-arg "COMPUTE_REVISION=$revision")
fi
image_build "${1:-compute:dev}" "${build_args[@]}"
