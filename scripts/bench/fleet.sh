#!/usr/bin/env bash
# fleet.sh: N replicas as one pool. Three compute-server processes on
# 127.0.0.1, made unequal by their worker counts (1, 4 and 4), every call a
# `sleep 20ms` (so a replica's capacity is workers / 20 ms whatever the
# machine's cores: 50 + 200 + 200 = 450 calls/s), loaded open loop at 80% of
# that by compute-client bench, once with --lb least_loaded and once with
# --lb round_robin (over the same ipv4: address list), and, as the baseline,
# one server with the summed workers (9) under the same load. Per scenario:
# goodput (OK / sent), p50 and p99 of OK calls (client), refused, and the OK
# calls each replica counted (its /metrics). The ratio the issue sets:
# least_loaded's p99 within 1.5x of the one-server baseline.
#
#   scripts/bench/fleet.sh
#   FLEET_TIME=5s scripts/bench/fleet.sh
#
# Environment (defaults):
#   FLEET_TIME (20s; BENCH_QUICK=1: 5s)  open-loop time per scenario
#   FLEET_WORKERS ("1 4 4")              workers of each replica
#   FLEET_LOAD (0.8)                     load, x the fleet's capacity
#   FLEET_SLEEP (20ms)                   sleep duration of each call
#   BUILD, COMPUTE_SERVER, COMPUTE_CLIENT, BENCH_KEEP: see lib.sh
set -euo pipefail
BENCH_NAME=fleet
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

STEP_TIME=${FLEET_TIME:-$(bench_default 20s 5s)}
read -r -a WORKERS <<<"${FLEET_WORKERS:-1 4 4}"
LOAD=${FLEET_LOAD:-0.8}
SLEEP=${FLEET_SLEEP:-20ms}
DEADLINE=5s

for w in "${WORKERS[@]}"; do
  [[ $w =~ ^[0-9]+$ ]] && ((w >= 1 && w <= 64)) ||
    bench_die "FLEET_WORKERS: each 1..64 (got '$w')"
done
((${#WORKERS[@]} >= 2 && ${#WORKERS[@]} <= 8)) ||
  bench_die "FLEET_WORKERS: 2 to 8 replicas"
[[ $LOAD =~ ^[0-9]*\.?[0-9]+$ ]] || bench_die "bad FLEET_LOAD '$LOAD'"
[[ $SLEEP =~ ^[0-9]+ms$ ]] || bench_die "FLEET_SLEEP in ms, like 20ms"
[[ $STEP_TIME =~ ^[0-9]+s$ ]] || bench_die "FLEET_TIME in s, like 20s"
command -v curl >/dev/null || bench_die "curl not found (apt-get install curl)"
bench_need_binaries "$COMPUTE_SERVER" "$COMPUTE_CLIENT"

sleep_s=$(python3 -c "print(${SLEEP%ms} / 1e3)")
total_workers=0
for w in "${WORKERS[@]}"; do total_workers=$((total_workers + w)); done
capacity=$(python3 -c "print($total_workers / $sleep_s)")
rate=$(python3 -c "print('%.1f' % ($LOAD * $capacity))")

# Replicas, then the one-server baseline; each on one I/O thread (the
# client and the other servers share the machine's cores).
addresses=()
metrics_ports=()
for i in "${!WORKERS[@]}"; do
  bench_start_compute "$bench_tmp/replica-$i.log" --workers="${WORKERS[$i]}" \
    --io_threads=1 --metrics_port=free ||
    bench_die "replica $i did not start"
  addresses+=("127.0.0.1:$compute_port")
  metrics_ports+=("$metrics_port")
done
fleet_target="ipv4:$(
  IFS=,
  echo "${addresses[*]}"
)"
bench_start_compute "$bench_tmp/single.log" --workers="$total_workers" \
  --io_threads=1 --metrics_port=free || bench_die "the baseline did not start"
single_target=127.0.0.1:$compute_port
single_metrics=$metrics_port

# ok_tasks PORT: sleep tasks that ended OK, from the server's /metrics.
ok_tasks() {
  curl -fsS -m 5 "http://127.0.0.1:$1/metrics" |
    awk '/^compute_tasks_total\{/ && /task="sleep"/ && /outcome="ok"/ {s += $2}
         END {printf "%d", s}'
}

# run NAME TARGET LB PORTS...: one scenario; prints its table row.
run() {
  local name=$1 target=$2 lb=$3 out=$bench_tmp/$1.json port
  shift 3
  local before=() after=() i per=()
  for port in "$@"; do before+=("$(ok_tasks "$port")"); done
  timeout --foreground $((${STEP_TIME%s} + 60)) "$COMPUTE_CLIENT" bench --target "$target" \
    --lb "$lb" --task sleep --duration "$SLEEP" --rate "$rate" \
    --time "$STEP_TIME" --deadline "$DEADLINE" --json >"$out" ||
    bench_die "compute-client bench ($name) failed"
  for port in "$@"; do after+=("$(ok_tasks "$port")"); done
  for i in "${!before[@]}"; do per+=($((after[i] - before[i]))); done
  printf '| %s | %s | %d | %.3f | %s | %s | %d | %s |\n' "$name" "$lb" \
    "$(bench_json "$out" 'j["sent"]')" \
    "$(bench_json "$out" 'j["status"].get("OK", 0) / j["sent"]')" \
    "$(bench_json "$out" '"%.1f ms" % j["latency_ms"]["p50"]')" \
    "$(bench_json "$out" '"%.1f ms" % j["latency_ms"]["p99"]')" \
    "$(bench_json "$out" 'j["refused"]')" "$(
      IFS=/
      echo "${per[*]}"
    )"
}

echo "## fleet: replicas with ${WORKERS[*]} workers, sleep $SLEEP calls," \
  "open loop at $rate calls/s ($LOAD x $capacity), $STEP_TIME per scenario"
echo
echo "Machine: nproc = $(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo |
  cut -d: -f2- | sed 's/^ *//')"
echo
echo "| scenario | --lb | sent | goodput (OK / sent) | p50 OK | p99 OK |" \
  "refused | OK per replica |"
echo "|---|---|---|---|---|---|---|---|"
run least_loaded "$fleet_target" least_loaded "${metrics_ports[@]}"
run round_robin "$fleet_target" round_robin "${metrics_ports[@]}"
run "one server, $total_workers workers" "$single_target" round_robin \
  "$single_metrics"
least_p99=$(bench_json "$bench_tmp/least_loaded.json" 'j["latency_ms"]["p99"]')
single_p99=$(bench_json "$bench_tmp/one server, $total_workers workers.json" \
  'j["latency_ms"]["p99"]')
echo
python3 -c "print('least_loaded p99 / one-server p99: %.2f (target <= 1.5)' \
  % ($least_p99 / $single_p99))"
