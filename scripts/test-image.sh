#!/usr/bin/env bash
# make test-image: build the container image, start the server from it, call
# Run and Health from outside with the host's compute-client, scrape
# /metrics, then SIGTERM the server and check it drained and exited 0.
#
# The container shares the host's network, so its ports are the host's
# loopback ports. It runs with the engine that built it (scripts/container.sh):
# docker or podman, or the optional helper's `run` on a machine that reaches
# no registry.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/container.sh
source scripts/container.sh

TAG=${TAG:-compute:dev}
CLIENT=${CLIENT:-build/client/compute-client}
LOG=$(mktemp)
CID=
RUNNER=
# However the script ends (a failed check exits at once, set -e): no server
# left running on the host's ports, no container left behind.
cleanup() {
  if [[ -n $CID ]]; then
    "$ENGINE" rm -f "$CID" >/dev/null 2>&1 || true
  fi
  if [[ -n $RUNNER ]] && kill -0 "$RUNNER" 2>/dev/null; then
    pkill -TERM -f "$SERVER_PATTERN" || true
    # Not yet started (pkill found nothing): the runner itself.
    kill -TERM "$RUNNER" 2>/dev/null || true
    wait "$RUNNER" 2>/dev/null || true
  fi
  rm -f "$LOG"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}
GRPC_PORT=$(free_port)
METRICS_PORT=$(free_port)
# The server itself, not the buildah/podman processes whose command lines
# also mention it, nor another run's on a port that starts with this one.
SERVER_PATTERN="^/usr/local/bin/compute-server --address=127.0.0.1 --port=$GRPC_PORT( |\$)"

image_build "$TAG"

echo "test-image: starting $TAG on :$GRPC_PORT (metrics :$METRICS_PORT)"
if [[ $IMAGE_ENGINE != helper ]]; then
  ENGINE=$IMAGE_ENGINE
  CID=$("$ENGINE" run -d --read-only --network host "$TAG" \
    --address=127.0.0.1 --port="$GRPC_PORT" --metrics_port="$METRICS_PORT" \
    --metrics_address=127.0.0.1 --drain_timeout=10s)
  stop_server() {
    "$ENGINE" stop -t 30 "$CID" >/dev/null
    RC=$("$ENGINE" wait "$CID")
  }
  logs() { "$ENGINE" logs "$CID" 2>&1; }
else
  "$(image_helper)" run "$TAG" compute-server --address=127.0.0.1 --port="$GRPC_PORT" \
    --metrics_port="$METRICS_PORT" --metrics_address=127.0.0.1 \
    --drain_timeout=10s >"$LOG" 2>&1 &
  RUNNER=$!
  stop_server() {
    local pid
    pid=$(pgrep -f "$SERVER_PATTERN")
    kill -TERM "$pid"
    RC=0
    wait "$RUNNER" || RC=$?
  }
  logs() { cat "$LOG"; }
fi

for _ in $(seq 1 100); do
  if "$CLIENT" health --target="127.0.0.1:$GRPC_PORT" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
"$CLIENT" health --target="127.0.0.1:$GRPC_PORT"
# (Not through `tee /dev/stderr`: that reopens a log file stderr may be
# redirected to, truncating it.)
FIB=$("$CLIENT" run fib --n 20 --target="127.0.0.1:$GRPC_PORT")
echo "$FIB" >&2
grep -q 6765 <<<"$FIB"
metrics() { curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics"; }
# (Captured first: grep -q closing the pipe early would fail curl under
# pipefail.)
SCRAPE=$(metrics)
grep -q '^compute_pool_workers ' <<<"$SCRAPE"
grep -q '^grpc_server_handled_total{grpc_code="OK"' <<<"$SCRAPE"

# A call in flight when SIGTERM arrives must still be answered.
"$CLIENT" run spin --duration 1s --target="127.0.0.1:$GRPC_PORT" >/dev/null &
INFLIGHT=$!
for _ in $(seq 1 100); do
  if grep -q '^compute_pool_workers_busy 1' <<<"$(metrics)"; then break; fi
  sleep 0.05
done
stop_server
wait "$INFLIGHT"
logs | tail -5
if [[ "$RC" != 0 ]]; then
  echo "test-image: server exited $RC" >&2
  exit 1
fi
logs | grep -q '"msg":"stopped"'
echo "test-image: OK"
