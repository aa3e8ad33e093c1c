#!/usr/bin/env bash
# Installs, with apt-get, exactly the Debian bookworm packages that the build,
# the tests and `make run` need. Idempotent: when everything is present it does
# nothing (no apt-get update, no root needed); otherwise it updates the package
# index once and installs only what is missing. Runs as root or through sudo.
#
#   install-deps.sh               everything (build, tests, make run)
#   install-deps.sh --build-only  what compiling the binaries needs (the image)
set -euo pipefail

BUILD_PACKAGES=(
  # toolchain
  g++ make cmake ninja-build pkg-config
  # gRPC, protobuf, abseil
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev
  # metrics, hashing
  prometheus-cpp-dev libssl-dev
  # compute-server's malloc (CMakeLists.txt, COMPUTE_MALLOC)
  libjemalloc-dev
)
TEST_PACKAGES=(
  # CI's static checks: formatting, clang's thread-safety analysis
  clang-format clang
  # `make fuzz`: libFuzzer and clang's sanitizer runtimes (clang-14 only
  # recommends them, and we install no recommendations)
  libclang-rt-14-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # TLS tests make their certificates at run time
  openssl
  # the decompression-bomb test compresses its bombs with zlib
  zlib1g-dev
  # metrics tests: a real Prometheus server and promtool
  prometheus curl
  # benchmarks: h2load (scripts/bench/e2e.sh); python3 (scripts/bench and
  # scripts/soak.sh ask the kernel for free ports with it); mimalloc, one of
  # the allocators scripts/bench/memory_allocators.sh compares
  nghttp2-client python3 libmimalloc-dev
)

PACKAGES=("${BUILD_PACKAGES[@]}")
if [[ "${1:-}" != "--build-only" ]]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
fi
# `make check-deploy` (tests/deploy) runs its schema and rule checks on
# Node: Debian's nodejs and npm, unless a node with its npm is already
# there (NodeSource's, say, which Debian's npm package would conflict with).
# It also needs kubectl 1.25 or later (the overlays' `labels:
# includeTemplates` needs its kustomize), which bookworm does not package
# (its kubernetes-client is 1.20): see README.
NODE_PACKAGES=()
if [[ "${1:-}" != "--build-only" ]] &&
  ! { command -v node && command -v npm; } >/dev/null; then
  NODE_PACKAGES=(nodejs npm)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
    grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

missing+=("${NODE_PACKAGES[@]}")

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
# Through env: sudo resets the environment.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian's prometheus package enables and starts a server of its own, on
# every interface at :9090, unauthenticated: the tests need only the
# binaries, and that server would take the port the compose stack's
# Prometheus publishes. Stopped and disabled when this script installed it:
# by systemd, or, without it (a container), by its init script, which the
# package's postinst starts unless a policy-rc.d forbids it.
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  if [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/prometheus ]]; then
    "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    "${SUDO[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi
