# shellcheck shell=bash
# What scripts/image.sh and scripts/test-image.sh share: which container
# engine builds and runs the image. Sourced, not run.
#
# image_build TAG [OPTION...] builds the Dockerfile as it is (OPTIONs, such
# as --build-arg NAME=VALUE, go to the engine's build), with
#   1. docker build, when a Docker engine answers (`docker info`), else
#   2. podman build,
# whichever first has the Dockerfile's base images or can pull them (and,
# for podman, can run a container: some sandboxes refuse its OCI runtime).
# Only when neither can (a machine that reaches no container registry) does
# it fall back to a helper, which is optional and not part of this project:
# $COMPUTE_IMAGE_HELPER, else ../shared/tools/container-build.sh beside the
# checkout if there is one. A helper is called as `HELPER build TAG
# DOCKERFILE CONTEXT` and `HELPER run TAG [CMD ARGS...]`. It sets
# IMAGE_ENGINE to docker, podman or helper (for image_run and friends).

# The FROM images of the Dockerfile, fully qualified for podman.
_base_images() {
  awk 'toupper($1) == "FROM" { print $2 }' Dockerfile | sort -u
}

_qualified() {
  local image=$1
  case $image in
    */*/*) echo "$image" ;;
    */*) echo "docker.io/$image" ;;
    *) echo "docker.io/library/$image" ;;
  esac
}

# has_base_images ENGINE: every base image is there, or pulled now.
has_base_images() {
  local engine=$1 image
  for image in $(_base_images); do
    [[ $engine == podman ]] && image=$(_qualified "$image")
    if ! "$engine" image inspect "$image" >/dev/null 2>&1 &&
      ! timeout "${COMPUTE_PULL_TIMEOUT:-120}" "$engine" pull -q "$image" \
        >/dev/null 2>&1; then
      echo "image: $engine cannot pull $image" >&2
      return 1
    fi
  done
}

# podman_runs: podman can start a container from the first base image.
podman_runs() {
  local image
  image=$(_qualified "$(_base_images | head -n 1)")
  if ! timeout 60 podman run --rm --network none "$image" true >/dev/null 2>&1
  then
    echo "image: podman cannot run a container here" >&2
    return 1
  fi
}

image_helper() {
  local helper=${COMPUTE_IMAGE_HELPER:-../shared/tools/container-build.sh}
  if [[ -x $helper ]]; then echo "$helper"; fi
}

# image_engine_present: docker (its engine answering), podman or an image
# helper is here; image_build may still fail (a base image it cannot pull,
# podman unable to run a container), but not for want of all three.
image_engine_present() {
  docker info >/dev/null 2>&1 || command -v podman >/dev/null 2>&1 ||
    [[ -n $(image_helper) ]]
}

image_build() {
  local tag=$1 helper
  shift
  IMAGE_ENGINE=
  if docker info >/dev/null 2>&1 && has_base_images docker; then
    IMAGE_ENGINE=docker
    docker build "$@" -t "$tag" -f Dockerfile .
  elif command -v podman >/dev/null 2>&1 && has_base_images podman &&
    podman_runs; then
    IMAGE_ENGINE=podman
    # Docker format keeps the HEALTHCHECK (OCI images drop it).
    podman build --format docker "$@" -t "$tag" -f Dockerfile .
  else
    helper=$(image_helper)
    if [[ -z $helper ]]; then
      echo "image: needs docker (with a running engine) or podman, either" \
        "able to pull $(_base_images | paste -sd ' ')," \
        "or COMPUTE_IMAGE_HELPER for a machine that reaches no registry" >&2
      return 1
    fi
    echo "image: neither docker nor podman can build here;" \
      "building with $helper" >&2
    IMAGE_ENGINE=helper
    if (($# > 0)); then
      echo "image: the helper takes no build options; without them: $*" >&2
    fi
    "$helper" build "$tag" Dockerfile .
  fi
  echo "image: built $tag with $IMAGE_ENGINE" >&2
}
