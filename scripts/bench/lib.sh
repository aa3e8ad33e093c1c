# shellcheck shell=bash
# What the scripts in scripts/bench share: binaries, a temporary directory,
# processes started in the background (all stopped on exit), free ports,
# bounded waits, and starting compute-server on loopback. Sourced, not run.
#
# Environment (all optional):
#   BUILD           build directory (default: <repo>/build)
#   COMPUTE_SERVER  compute-server binary (default: $BUILD/server/compute-server)
#   COMPUTE_CLIENT  compute-client binary (default: $BUILD/client/compute-client)
#   ECHO_SERVER     echo_server binary (default: $BUILD/tests/bench/echo_server)
#   BENCH_KEEP=1    keep the temporary directory (logs, scrapes) and say where
#   BENCH_QUICK=1   shorter defaults (each script says which)
#   BENCH_SERVER_CPUS  a taskset CPU list (e.g. 0,1) for the servers under
#                   test: on a machine with more cores, the servers get the
#                   2 cores of the machine the README's tables come from.
#                   compute-server is pinned in every script (it starts
#                   here); e2e.sh also pins its echo servers and neighbour
#   BENCH_CLIENT_CPUS  the same for the load generators, e.g. 2-15: only
#                   e2e.sh pins them (h2load, compute-client bench); in the
#                   other scripts the clients run wherever the kernel puts
#                   them

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$BENCH_ROOT/build}
COMPUTE_SERVER=${COMPUTE_SERVER:-$BUILD/server/compute-server}
COMPUTE_CLIENT=${COMPUTE_CLIENT:-$BUILD/client/compute-client}
ECHO_SERVER=${ECHO_SERVER:-$BUILD/tests/bench/echo_server}
BENCH_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_NAME=${BENCH_NAME:-bench}
BENCH_QUICK=${BENCH_QUICK:-0}

# Command prefixes that pin servers and load generators (empty: not pinned);
# the scripts that source this use bench_client_prefix.
bench_server_prefix=()
# shellcheck disable=SC2034
bench_client_prefix=()
if [[ -n ${BENCH_SERVER_CPUS:-}${BENCH_CLIENT_CPUS:-} ]]; then
  command -v taskset >/dev/null ||
    { echo "$BENCH_NAME: BENCH_SERVER_CPUS/BENCH_CLIENT_CPUS need taskset (util-linux)" >&2; exit 1; }
  [[ -z ${BENCH_SERVER_CPUS:-} ]] ||
    bench_server_prefix=(taskset -c "$BENCH_SERVER_CPUS")
  # shellcheck disable=SC2034
  [[ -z ${BENCH_CLIENT_CPUS:-} ]] ||
    bench_client_prefix=(taskset -c "$BENCH_CLIENT_CPUS")
fi

# bench_default FULL QUICK: FULL, or QUICK when BENCH_QUICK=1.
bench_default() {
  if [[ $BENCH_QUICK == 1 ]]; then echo "$2"; else echo "$1"; fi
}

bench_tmp=$(mktemp -d "${TMPDIR:-/tmp}/compute-$BENCH_NAME.XXXXXX")
bench_pids=()

# Stops every process started with bench_start: SIGTERM, up to 5 s (a
# draining compute-server answers its calls first), then SIGKILL.
# bench_reap PID: waits up to 5 s for PID (already sent SIGTERM) to exit,
# then kills it, and reaps it.
bench_reap() {
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do bench_reap "$pid"; done
  bench_pids=()
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    echo "$BENCH_NAME: logs kept in $bench_tmp" >&2
  else
    rm -rf "$bench_tmp"
  fi
}
trap bench_cleanup EXIT
trap 'exit 143' TERM INT HUP

bench_die() {
  echo "$BENCH_NAME: $*" >&2
  exit 1
}

# bench_need_binaries PATH...: each must be an executable file.
bench_need_binaries() {
  local bin
  for bin in "$@"; do
    [[ -x $bin ]] || bench_die "$bin not found or not executable (make build;" \
      "or set COMPUTE_SERVER / COMPUTE_CLIENT / ECHO_SERVER)"
  done
}

# bench_start LOG CMD...: runs CMD in the background, stdout and stderr to
# LOG; its pid is in $bench_last_pid (and stopped on exit).
bench_start() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  bench_last_pid=$!
  bench_pids+=("$bench_last_pid")
}

# bench_stop PID: SIGTERM, up to 5 s, SIGKILL; forgets it. Returns 0.
bench_stop() {
  local pid=$1 kept=() p
  kill -TERM "$pid" 2>/dev/null || true
  bench_reap "$pid"
  for p in "${bench_pids[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  bench_pids=("${kept[@]}")
}

# A free TCP port on 127.0.0.1 (the kernel picks it; a later bind can still
# lose a race, so starters retry).
bench_free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# bench_wait_line FILE REGEX SECONDS PID: until a line of FILE matches the
# extended REGEX (0), PID exits (1), or SECONDS pass (2). Polls every 50 ms.
bench_wait_line() {
  local file=$1 regex=$2 limit=$3 pid=$4 i end=$((SECONDS + $3))
  for ((i = 0; i < limit * 20 && SECONDS <= end; i++)); do
    if grep -Eq -- "$regex" "$file" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 2
}

# bench_wait_http URL SECONDS: until URL answers 2xx.
bench_wait_http() {
  local url=$1 limit=$2 i end=$((SECONDS + $2))
  for ((i = 0; i < limit * 5 && SECONDS <= end; i++)); do
    if curl -fsS -m 2 -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

# bench_start_compute LOG [FLAG...]: starts compute-server on 127.0.0.1 with
# --port=0 (the kernel picks; read from its "serving" log line) and the
# flags. If a flag says --metrics_port=free, a free port is picked for it
# (and the start retried up to 3 times should another process take it,
# before the server binds it or after).
# Sets compute_pid, compute_port and metrics_port (0 when none); returns 1
# with the server's last log lines on stderr if it does not serve in 30 s,
# 2 if it exited with code 2 (a flag it refused: see its log).
bench_start_compute() {
  local log=$1 attempt flag rc
  shift
  local flags=()
  metrics_port=0
  for ((attempt = 1; attempt <= 3; attempt++)); do
    flags=()
    for flag in "$@"; do
      if [[ $flag == --metrics_port=free ]]; then
        metrics_port=$(bench_free_port)
        flag=--metrics_port=$metrics_port
      fi
      flags+=("$flag")
    done
    bench_start "$log" "${bench_server_prefix[@]}" "$COMPUTE_SERVER" \
      --address=127.0.0.1 \
      --metrics_address=127.0.0.1 --port=0 "${flags[@]}"
    compute_pid=$bench_last_pid
    rc=0
    bench_wait_line "$log" '"msg":"serving"' 30 "$compute_pid" || rc=$?
    if ((rc == 0)); then
      compute_port=$(grep -m1 '"msg":"serving"' "$log" |
        grep -Eo '"port":[0-9]+' | head -1 | cut -d: -f2)
      [[ -n $compute_port ]] || bench_die "no port in the serving line of $log"
      if ((metrics_port != 0)) &&
        ! bench_wait_http "http://127.0.0.1:$metrics_port/metrics" 10; then
        bench_stop "$compute_pid"
        continue
      fi
      return 0
    fi
    if ((rc == 1)); then # it exited: why?
      rc=0
      wait "$compute_pid" 2>/dev/null || rc=$?
      bench_stop "$compute_pid"
      # The metrics port it was given was taken before its check (exit 2
      # too, but no flag of the caller's is wrong): another one. (Taken
      # between its check and its bind, it exits 1: retried below.)
      if ((rc == 2 && metrics_port != 0)) &&
        grep -q -- "--metrics_port: port $metrics_port is in use" "$log"; then
        echo "$BENCH_NAME: metrics port $metrics_port taken," \
          "attempt $attempt" >&2
        continue
      fi
      if ((rc == 2)); then return 2; fi
      echo "$BENCH_NAME: compute-server exited (code $rc), attempt $attempt:" >&2
      tail -3 "$log" >&2
      continue
    fi
    bench_stop "$compute_pid"
    echo "$BENCH_NAME: compute-server did not serve within 30 s:" >&2
    tail -3 "$log" >&2
    return 1
  done
  return 1
}

# bench_log_field LOG MSG FIELD: FIELD of the first JSON log line of LOG
# whose "msg" is MSG (e.g. starting, workers), or nothing.
bench_log_field() {
  python3 -c 'import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if isinstance(j, dict) and j.get("msg") == sys.argv[2]:
        print(j.get(sys.argv[3], ""))
        break' "$@"
}

# bench_scrape PORT FILE: the server's /metrics into FILE.
bench_scrape() {
  curl -fsS -m 10 "http://127.0.0.1:$1/metrics" >"$2" ||
    bench_die "cannot scrape http://127.0.0.1:$1/metrics"
}

# bench_promq ARGS...: scripts/bench/promq.py (histogram quantiles and
# counter deltas between two scrapes).
bench_promq() {
  python3 "$BENCH_HERE/promq.py" "$@"
}

# bench_json FILE EXPR: evaluates a Python expression over the JSON object
# in FILE (bound to `j`), e.g. 'j["status"].get("OK", 0)'.
bench_json() {
  python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"j": j})
print("%.6g" % v if isinstance(v, float) else v)' "$1" "$2"
}

# bench_machine_line: one line saying what machine the numbers come from.
bench_machine_line() {
  echo "Machine: nproc = $(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo |
    cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
}

# bench_write_pgm FILE SIDE: a SIDE x SIDE binary PGM (P5), a gradient.
bench_write_pgm() {
  python3 - "$1" "$2" <<'PY'
import sys
path, side = sys.argv[1], int(sys.argv[2])
row = bytes(x * 255 // max(side - 1, 1) for x in range(side))
with open(path, "wb") as f:
    f.write(b"P5\n%d %d\n255\n" % (side, side))
    f.write(row * side)
PY
}
