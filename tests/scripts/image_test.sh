#!/usr/bin/env bash
# scripts/image.sh chooses how to build the image: docker build when a Docker
# engine answers and has (or can pull) the base images, else podman build,
# and the optional helper only when neither can get the base images. Fake
# docker, podman and helper commands record how they were called; PATH holds
# them and the few tools the script needs, nothing else.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

tools="$tmp/tools"
mkdir -p "$tools"
for t in bash env awk sort paste timeout cat dirname head; do
  ln -s "$(command -v "$t")" "$tools/$t"
done

# fake NAME: a command that logs "NAME ARGS" and answers from FAKE_* vars.
fake() {
  cat >"$1" <<SCRIPT
#!/usr/bin/env bash
echo "$(basename "$1") \$*" >>"\$FAKE_LOG"
case "\$1" in
  info) [[ \${FAKE_DOCKER_ENGINE:-up} == up ]] ;;
  image) exit 1 ;;  # image inspect: no local base image
  pull) [[ \${FAKE_PULL:-ok} == ok ]] ;;
  run) [[ \${FAKE_RUN:-ok} == ok ]] ;;
  *) exit 0 ;;
esac
SCRIPT
  chmod +x "$1"
}

# run CASE ENGINES: scripts/image.sh with fake ENGINES (docker, podman) on
# PATH; sets OUT (stderr), RC and CALLS (the fakes' log).
run() {
  local name=$1 engines=$2
  local bin="$tmp/$name"
  mkdir -p "$bin"
  for e in $engines; do fake "$bin/$e"; done
  fake "$tmp/helper-$name"
  export FAKE_LOG="$tmp/$name.log"
  : >"$FAKE_LOG"
  RC=0
  OUT=$(PATH="$bin:$tools" "$root/scripts/image.sh" test:1 2>&1) || RC=$?
  CALLS=$(cat "$FAKE_LOG")
}

expect() { # CASE DESCRIPTION CONDITION...
  local name=$1 what=$2
  shift 2
  if "$@"; then
    echo "ok   $name: $what"
  else
    echo "FAIL $name: $what" >&2
    echo "  rc=$RC; output: $OUT; calls: $CALLS" >&2
    failures=$((failures + 1))
  fi
}
has() { grep -qxF -- "$1" <<<"$CALLS"; }
lacks() { ! grep -q -- "$1" <<<"$CALLS"; }

FAKE_DOCKER_ENGINE=up FAKE_PULL=ok \
  COMPUTE_IMAGE_HELPER="$tmp/helper-docker" run docker "docker podman"
expect docker "docker builds the Dockerfile as it is" \
  has "docker build -t test:1 -f Dockerfile ."
expect docker "it pulled the base images first" has "docker pull -q debian:bookworm-slim"
expect docker "no podman, no helper" lacks "podman build\|helper"
expect docker "exit 0" test "$RC" = 0

FAKE_DOCKER_ENGINE=down FAKE_PULL=ok \
  COMPUTE_IMAGE_HELPER="$tmp/helper-podman" run podman "docker podman"
expect podman "without a Docker engine, podman builds the Dockerfile" \
  has "podman build --format docker -t test:1 -f Dockerfile ."
expect podman "with the base images fully qualified" \
  has "podman pull -q docker.io/library/debian:bookworm"
expect podman "it checked that podman can run a container" \
  has "podman run --rm --network none docker.io/library/debian:bookworm true"
expect podman "no docker build, no helper" lacks "docker build\|helper"
expect podman "exit 0" test "$RC" = 0

FAKE_DOCKER_ENGINE=up FAKE_PULL=fail \
  COMPUTE_IMAGE_HELPER="$tmp/helper-offline" run offline "docker podman"
expect offline "neither can pull: the helper builds" \
  has "helper-offline build test:1 Dockerfile ."
expect offline "and says why" grep -q "neither docker nor podman can build here" <<<"$OUT"
expect offline "no engine builds" lacks "docker build\|podman build"

FAKE_DOCKER_ENGINE=down FAKE_PULL=ok FAKE_RUN=fail \
  COMPUTE_IMAGE_HELPER="$tmp/helper-norun" run norun "docker podman"
expect norun "podman that cannot run a container: the helper builds" \
  has "helper-norun build test:1 Dockerfile ."
expect norun "and says why" grep -q "podman cannot run a container here" <<<"$OUT"

FAKE_DOCKER_ENGINE=down \
  COMPUTE_IMAGE_HELPER="$tmp/helper-none" run none ""
expect none "no engine at all: the helper builds" \
  has "helper-none build test:1 Dockerfile ."

FAKE_DOCKER_ENGINE=down FAKE_PULL=fail \
  COMPUTE_IMAGE_HELPER="$tmp/no-such-helper" run nohelper "docker podman"
expect nohelper "no way to build: exit 1" test "$RC" = 1
expect nohelper "one line saying what it needs" \
  grep -q "^image: needs docker (with a running engine) or podman" <<<"$OUT"

if ((failures > 0)); then
  echo "image_test: $failures failed" >&2
  exit 1
fi
echo "image_test: OK"
